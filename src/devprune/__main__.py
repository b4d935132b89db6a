from devprune.cli import main

raise SystemExit(main())
