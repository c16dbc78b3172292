"""The notification log (SPEC 10): every delivery with its attempts (status codes,
errors, durations); resend; and "send a test notification" to a configured channel.
The verbs are ``django_jobs.notifications.deliveries``'; both are written to the audit
log."""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from ..conf import jobs_settings
from ..models import Delivery
from ..notifications import deliveries
from .audit import audit
from .display import JobsAdminMedia, page_context, pretty_json


@admin.register(Delivery)
class DeliveryAdmin(JobsAdminMedia, admin.ModelAdmin):
    list_display = ("created_at", "event", "channel", "target_display", "status_display",
                    "attempt_count", "last_answer", "job_link")  # fmt: skip
    list_filter = ("status", "channel", "event")
    search_fields = ("target", "task_name", "message_id")
    date_hierarchy = "created_at"
    show_full_result_count = False
    actions = ["resend_deliveries"]
    fields = ("created_at", "event", "channel", "target", "status_display", "job_link",
              "task_name", "message_id", "due_at", "delivered_at", "sender_link",
              "attempts_display", "payload_display")  # fmt: skip
    readonly_fields = fields
    change_list_template = "django_jobs/admin/delivery_change_list.html"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        # The list's actions need it; a delivery's own page never saves (its rows are
        # written by its sending job only).
        return obj is None and super().has_change_permission(request)

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("test/", wrap(self.test_view), name="django_jobs_delivery_test"),
            *super().get_urls(),
        ]

    # -- columns ----------------------------------------------------------------------

    @admin.display(description=gettext_lazy("status"), ordering="status")
    def status_display(self, obj: Delivery) -> SafeString:
        return render_to_string(
            "django_jobs/admin/status.html",
            {"status": obj.status, "label": obj.get_status_display()},
        )

    @admin.display(description=gettext_lazy("to"), ordering="target")
    def target_display(self, obj: Delivery) -> SafeString:
        return _short(obj.target, 40)

    @admin.display(description=gettext_lazy("attempts"))
    def attempt_count(self, obj: Delivery) -> int:
        return len(obj.attempts)

    @admin.display(description=gettext_lazy("last answer"))
    def last_answer(self, obj: Delivery) -> SafeString:
        return _short(obj.last_answer, 36)

    @admin.display(description=gettext_lazy("job"))
    def job_link(self, obj: Delivery) -> SafeString | str:
        return _job_link(obj.job_id)

    @admin.display(description=gettext_lazy("sent by job"))
    def sender_link(self, obj: Delivery) -> SafeString | str:
        return _job_link(obj.sender_job_id)

    @admin.display(description=gettext_lazy("attempts"))
    def attempts_display(self, obj: Delivery) -> SafeString:
        rows = [
            {
                **attempt,
                # "HTTP 503" says it all already in the answer's column.
                "note": "" if attempt.get("error") == f"HTTP {attempt.get('status_code')}"
                else attempt.get("error", ""),
            }
            for attempt in obj.attempts
        ]  # fmt: skip
        return render_to_string("django_jobs/admin/delivery_attempts.html", {"attempts": rows})

    @admin.display(description=gettext_lazy("payload"))
    def payload_display(self, obj: Delivery) -> SafeString:
        return pretty_json(obj.payload)

    # -- verbs ------------------------------------------------------------------------

    @admin.action(description=gettext_lazy("Send the selected deliveries again"),
                  permissions=["change"])  # fmt: skip
    def resend_deliveries(self, request, queryset):
        db = queryset.db
        chosen = list(queryset)
        count = deliveries.resend(chosen, db)
        audit(request, db, "resend", "delivery", [d.pk for d in chosen], count=count)
        messages.success(
            request,
            ngettext("%d delivery will be sent again.", "%d deliveries will be sent again.", count)
            % count,
        )

    def test_view(self, request):
        """The configured channels, each with a button that sends it a test message."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        settings = jobs_settings.NOTIFICATIONS
        channels = []
        if settings.email is not None:
            channels.append(("email", _("Email to %s") % ", ".join(settings.email.to)))
        channels += [(hook.url, _("Webhook %s") % hook.url) for hook in settings.webhooks]
        if request.method == "POST":
            if not self.has_change_permission(request):
                raise PermissionDenied
            db = self.get_queryset(request).db
            try:
                delivery = deliveries.send_test(db, request.POST.get("channel", ""))
            except ValueError as exc:
                messages.error(request, str(exc))
                return HttpResponseRedirect(request.path)
            audit(request, db, "send_test", "delivery", [delivery.pk], count=1,
                  channel=delivery.target)  # fmt: skip
            messages.success(
                request,
                _("A test notification to %s is on its way: it is sent by a worker.")
                % delivery.target,
            )
            return HttpResponseRedirect(
                reverse("admin:django_jobs_delivery_change", args=[delivery.pk])
            )
        trail = [
            (
                reverse("admin:django_jobs_delivery_changelist"),
                self.model._meta.verbose_name_plural.capitalize(),
            )
        ]
        context = {
            **page_context(request, self, _("Send a test notification"), trail),
            "channels": channels,
            "queue": jobs_settings.NOTIFICATIONS_QUEUE,
            "can_send": self.has_change_permission(request),
        }
        return TemplateResponse(request, "django_jobs/admin/delivery_test.html", context)


def _job_link(pk: int | None) -> SafeString | str:
    if pk is None:
        return "-"
    url = reverse("admin:django_jobs_job_change", args=[pk])
    return render_to_string("django_jobs/admin/link.html", {"url": url, "text": pk})


def _short(text: str, size: int) -> SafeString:
    """``text`` cut to ``size`` characters, whole in its tooltip."""
    shown = text if len(text) <= size else text[: size - 1] + "…"
    return render_to_string("django_jobs/admin/short_text.html", {"text": text, "shown": shown})
