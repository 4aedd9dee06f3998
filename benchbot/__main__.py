from benchbot.cli import main

main()
