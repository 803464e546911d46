"""Entry point of the deployable web app: ``python webapp/main.py`` (or ``bloodcell webapp``).

The code lives in the ``bloodcell.web`` package so it ships in the wheel; this
file only starts it, and is also the main file NiceGUI's test harness runs.
"""

from bloodcell.web.app import main

main()
