from edgeddns.cli import main

raise SystemExit(main())
