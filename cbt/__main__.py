from cbt.cli import main

raise SystemExit(main())
