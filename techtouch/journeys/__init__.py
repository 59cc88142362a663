"""Journeys as code: spec, conditions, state, decisions."""
