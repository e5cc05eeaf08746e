"""Extract: read a keyset page from MySQL and stage it in S3 (SQS page messages in)."""

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from sluice import stages
from sluice.events import run_page_stage
from sluice.staging import PageRef

processor = BatchProcessor(event_type=EventType.SQS)
logger = Logger()
tracer = Tracer()
metrics = Metrics()


@tracer.capture_method
def record_handler(record: SQSRecord) -> None:
    message = record.json_body
    ref = PageRef.from_dict(message)
    logger.thread_safe_append_keys(run_id=ref.run_id, page=ref.label)
    ctx = stages.context()
    receives = int(record.attributes.approximate_receive_count or 1)
    result = run_page_stage(
        ctx, "extract", lambda: stages.extract_page(ctx, message), ref, receives
    )
    metrics.add_metric(name="RowsExtracted", unit=MetricUnit.Count, value=result["rows"])
    metrics.add_metric(name="PageSeconds", unit=MetricUnit.Seconds, value=result["seconds"])
    logger.info("page extracted", extra=result)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
