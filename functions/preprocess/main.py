"""preprocess: an upload became an object; make the model's input tensor from it."""

import functions_framework
from cloudevents.http import CloudEvent
from flask import current_app, has_app_context

from bloodcell.funcserver import answer_faults
from bloodcell.handlers import handle_preprocess

# Faults raised before the function runs (a body nested 50,000 deep, invalid UTF-8) are
# answered by bloodcell.errors' rule too, 400 not 500, however the function is served.
if has_app_context():  # functions-framework imports this inside its app; a bare import has none
    answer_faults(current_app._get_current_object(), "preprocess")


@functions_framework.cloud_event
def preprocess(event: CloudEvent) -> None:
    handle_preprocess(event)
