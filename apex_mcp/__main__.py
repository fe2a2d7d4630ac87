import sys

from apex_mcp.cli.main import main

sys.exit(main())
