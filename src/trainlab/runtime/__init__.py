"""Running trainlab jobs: building objects from configs, the train/eval/predict pipelines, and
run directories. Importing this package stays light; the heavy parts import torch lazily."""
