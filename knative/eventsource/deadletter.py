"""Dead-letter sink: log every event the Broker gave up on, one JSON line each.

Triggers send an event here after their retries are exhausted. Nothing is
dropped silently: `kubectl logs -n bloodcell -l serving.knative.dev/service=dead-letters`
shows the event's attributes (including Knative's ``knativeerrordest``,
``knativeerrorcode`` and ``knativeerrordata`` extensions, which say where and
why delivery failed) and its data. Run with:

    functions-framework --target=dead_letter --signature-type=cloudevent \
        --source=knative/eventsource/deadletter.py
"""

import json
import logging
import sys

import functions_framework
from cloudevents.http import CloudEvent

logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(message)s")
log = logging.getLogger("bloodcell.deadletter")


@functions_framework.cloud_event
def dead_letter(event: CloudEvent) -> None:
    data = event.data
    if isinstance(data, bytes):
        data = data.decode("utf-8", errors="replace")
    log.warning(
        json.dumps(
            {"dead_letter": True, "attributes": dict(event.get_attributes()), "data": data}, default=str
        )
    )
