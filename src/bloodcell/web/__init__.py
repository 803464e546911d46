"""The NiceGUI web app: upload a batch, follow it through the pipeline, read a differential count.

The app only writes uploads into the upload bucket and reads what the pipeline
writes back; it never classifies in-process, so what people see here is exactly
what a file dropped straight into the bucket would get.
"""
