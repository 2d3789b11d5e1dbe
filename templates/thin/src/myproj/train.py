"""`python -m myproj.train [overrides]`: trainlab's train with this project's conf/."""

from trainlab.project import main as run

from myproj import CONF


def main() -> None:
    run("train", CONF, "myproj")


if __name__ == "__main__":
    main()
