import sys

from swarmkeeper_cli.main import main

sys.exit(main())
