"""``python -m healnet_cli`` runs the command-line interface."""

from healnet_cli.cli import main

if __name__ == "__main__":
    main()
