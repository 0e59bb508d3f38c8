"""``python -m assistant`` is the ``s2r`` command."""

from assistant.interfaces.cli import main

raise SystemExit(main())
