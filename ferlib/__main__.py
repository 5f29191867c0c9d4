from ferlib.commands import main

raise SystemExit(main())
