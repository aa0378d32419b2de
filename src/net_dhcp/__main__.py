"""`python -m net_dhcp` is the `net-dhcp` command."""

from .cli import main

raise SystemExit(main())
