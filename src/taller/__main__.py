from taller.apps.cli import main

main()
