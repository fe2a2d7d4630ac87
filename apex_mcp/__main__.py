import sys

from apex_mcp.cli import main

sys.exit(main())
