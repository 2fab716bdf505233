"""Entry point: `python run_pipeline.py --input ... --output ...` (also the `bg-obj-remover` script
and `python -m pipeline.run`)."""


def main(argv=None):
    from pipeline.run import main as run_main
    run_main(argv)


if __name__ == "__main__":
    main()
