"""predict: a tensor became an object; classify it, publish the result, archive a copy."""

import functions_framework
from cloudevents.http import CloudEvent

from bloodcell.handlers import handle_predict, pipeline

# Load the model at start-up, not on the first event. Where it lives is decided in
# one place, bloodcell.model.default_model_dir() (MODEL_DIR overrides it).
_ = pipeline().classifier


@functions_framework.cloud_event
def predict(event: CloudEvent) -> None:
    handle_predict(event)
