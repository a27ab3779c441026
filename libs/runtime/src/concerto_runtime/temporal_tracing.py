"""An activity started for a signal continues the signal's trace (ADR 18).

Temporal's TracingInterceptor puts a workflow's spans, its activities' too, in the trace of
whoever started the workflow; a signal's span is in that trace as well, with only a *link* to the
signal's sender. That suits a workflow per order. A workflow that outlives its orders, the
loyalty account's (one per customer, fed by signals), would put every later order's points into
the first order's trace, and the events its activities publish would carry that trace on.

So: when a signal hands a workflow an argument and the workflow starts an activity with that
very object (the loyalty account queues the change it was signalled, then runs its step with
it), the activity's span is made a child of the signal's sender, in the sender's trace. Anything
else keeps TracingInterceptor's parent. Only the span's header changes, never a command, so
replay is unaffected (and on replay no span is made at all).

This interceptor must come after TracingInterceptor in the client's list: its workflow
interceptor then sees each signal's header, and its outbound side runs before the tracing one's.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import opentelemetry.context
from opentelemetry.propagate import get_global_textmap
from temporalio import client, converter, worker

# TracingInterceptor's header: where a call's trace context travels.
HEADER = "_tracer-data"
# Signalled arguments waiting for their activity; a workflow that never runs one forgets the oldest.
REMEMBERED = 1000


class SignalTracingInterceptor(client.Interceptor, worker.Interceptor):
    def workflow_interceptor_class(self, input: worker.WorkflowInterceptorClassInput) -> type[worker.WorkflowInboundInterceptor]:
        return _SignalTracingInbound


class _SignalTracingInbound(worker.WorkflowInboundInterceptor):
    def __init__(self, next: worker.WorkflowInboundInterceptor) -> None:
        super().__init__(next)
        # id(argument) -> (argument, the signal's trace carrier); the argument is kept so that
        # its id cannot be reused by another object while it waits.
        self.carriers: OrderedDict[int, tuple[Any, dict]] = OrderedDict()

    def init(self, outbound: worker.WorkflowOutboundInterceptor) -> None:
        super().init(_SignalTracingOutbound(outbound, self))

    async def handle_signal(self, input: worker.HandleSignalInput) -> None:
        header = input.headers.get(HEADER)
        if header is not None:
            carrier = converter.PayloadConverter.default.from_payloads([header])[0]
            for argument in input.args:
                self.carriers[id(argument)] = (argument, carrier)
            while len(self.carriers) > REMEMBERED:
                self.carriers.popitem(last=False)
        await super().handle_signal(input)

    def signal_context(self, args: Any) -> opentelemetry.context.Context | None:
        """The current context with the span of the signal that brought one of `args`, if any."""
        for argument in args:
            remembered = self.carriers.get(id(argument))
            if remembered is not None and remembered[0] is argument:
                del self.carriers[id(argument)]
                return get_global_textmap().extract(remembered[1], context=opentelemetry.context.get_current())
        return None


class _SignalTracingOutbound(worker.WorkflowOutboundInterceptor):
    def __init__(self, next: worker.WorkflowOutboundInterceptor, root: _SignalTracingInbound) -> None:
        super().__init__(next)
        self.root = root

    def start_activity(self, input: worker.StartActivityInput):
        return self._in_signal_context(input, super().start_activity)

    def start_local_activity(self, input: worker.StartLocalActivityInput):
        return self._in_signal_context(input, super().start_local_activity)

    def _in_signal_context(self, input, start):
        context = self.root.signal_context(input.args)
        if context is None:
            return start(input)
        token = opentelemetry.context.attach(context)
        try:
            return start(input)
        finally:
            opentelemetry.context.detach(token)
