from cxrviewer.cli import main

raise SystemExit(main())
