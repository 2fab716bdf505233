"""Entry point: `python run_pipeline.py --input ... --output ...` (also the `bg-obj-remover` script)."""
import logging
import sys


def main(argv=None):
    # The job's own messages (progress, skipped files, retries) at INFO; the libraries' at WARNING.
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    for package in ("pipeline", "transforms", "models"):
        logging.getLogger(package).setLevel(logging.INFO)
    from pipeline.run import run
    run(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    main()
