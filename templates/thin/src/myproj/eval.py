"""`python -m myproj.eval [overrides]`: trainlab's eval with this project's conf/."""

from trainlab.project import main as run

from myproj import CONF


def main() -> None:
    run("eval", CONF, "myproj")


if __name__ == "__main__":
    main()
