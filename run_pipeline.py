"""Entry point: `python run_pipeline.py --input ... --output ...` (also the `bg-obj-remover` script)."""
import sys


def main(argv=None):
    from pipeline.run import run
    run(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    main()
