"""preprocess: an upload became an object; make the model's input tensor from it."""

import functions_framework
from cloudevents.http import CloudEvent

from bloodcell.handlers import handle_preprocess


@functions_framework.cloud_event
def preprocess(event: CloudEvent) -> None:
    handle_preprocess(event)
