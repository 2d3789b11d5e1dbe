"""`python -m myproj.predict [overrides]`: trainlab's predict with this project's conf/."""

from trainlab.project import main as run

from myproj import CONF


def main() -> None:
    run("predict", CONF, "myproj")


if __name__ == "__main__":
    main()
