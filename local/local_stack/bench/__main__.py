import sys

from local_stack.bench.cli import main

sys.exit(main())
