from rta.cli.main import run

run()
