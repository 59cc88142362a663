"""Rich views of what the services return: the CLI's tables and panels (no logic, no queries).

One module per command, so that each view can grow without the others.
"""

from techtouch.entrypoints.cli.views.account import print_account
from techtouch.entrypoints.cli.views.preview import print_preview
from techtouch.entrypoints.cli.views.run import report_tables
from techtouch.entrypoints.cli.views.simulation import print_simulation

__all__ = ["print_account", "print_preview", "print_simulation", "report_tables"]
