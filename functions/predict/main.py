"""predict: a tensor became an object; classify it, publish the result, archive a copy."""

import functions_framework
from cloudevents.http import CloudEvent
from flask import current_app, has_app_context

from bloodcell.funcserver import answer_faults
from bloodcell.handlers import handle_predict, pipeline

# Load the model at start-up, not on the first event. Where it lives is decided in
# one place, bloodcell.model.default_model_dir() (MODEL_DIR overrides it).
_ = pipeline().classifier

# Faults raised before the function runs (a body nested 50,000 deep, invalid UTF-8) are
# answered by bloodcell.errors' rule too, 400 not 500, however the function is served.
if has_app_context():  # functions-framework imports this inside its app; a bare import has none
    answer_faults(current_app._get_current_object(), "predict")


@functions_framework.cloud_event
def predict(event: CloudEvent) -> None:
    handle_predict(event)
