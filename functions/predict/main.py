"""predict: a tensor became an object; classify it, publish the result, archive a copy."""

import os
from pathlib import Path

import functions_framework
from cloudevents.http import CloudEvent

from bloodcell.handlers import handle_predict, pipeline

# The model ships beside this file; MODEL_DIR overrides it.
os.environ.setdefault("MODEL_DIR", str(Path(__file__).resolve().parent / "model"))
_ = pipeline().classifier  # load the model at start-up, not on the first event


@functions_framework.cloud_event
def predict(event: CloudEvent) -> None:
    handle_predict(event)
