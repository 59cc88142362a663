"""techtouch: tech-touch customer-success journeys as code."""

__version__ = "0.1.0"
