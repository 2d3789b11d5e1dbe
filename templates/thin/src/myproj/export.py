"""`python -m myproj.export [overrides]`: trainlab's export with this project's conf/."""

from trainlab.project import main as run

from myproj import CONF


def main() -> None:
    run("export", CONF, "myproj")


if __name__ == "__main__":
    main()
