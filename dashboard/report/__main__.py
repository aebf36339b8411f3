from dashboard.report.cli import main

raise SystemExit(main())
