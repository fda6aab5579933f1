"""Allow ``python -m portalctl``."""

from portalctl.cli.app import main

main()
