"""Jobs triggered by events (SPEC 5.11): ``jobs.on`` and ``@job(on=...)``."""

import logging
import pickle
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, User
from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import Signal
from django.utils import timezone

from django_jobs import Priority, TaskNotFound, job, jobs, trigger
from django_jobs._compat import Task
from django_jobs.models import Job
from django_jobs.registry import registry
from django_jobs.triggers import ConnectedTrigger, connected_triggers
from tests.helpers import unique_queue
from tests.testapp.jobs import audit_order, ship_order
from tests.testapp.models import Execution
from tests.testapp.signals import order_cancelled, order_placed
from tests.testapp.tasks import add, noop, record_label


class Rollback(Exception):
    pass


def created(created, **kwargs):
    return created


def user_kwargs(instance, **kwargs):
    return {"user_id": instance.pk}


# Declared as tasks by the tests of @job(on=...) (tasks are module-level functions).
def welcome(user_id):
    return user_id


def reindex(**kwargs):
    return None


def audit(event):
    return event


def shipped(order_id):
    return order_id


@pytest.fixture(autouse=True)
def _new_triggers_disconnected():
    """What a test connects, it leaves connected for no other test."""
    before = {id(handle) for handle in connected_triggers()}
    yield
    for handle in connected_triggers():
        if id(handle) not in before:
            handle.disconnect()


@pytest.fixture
def declared():
    """Tasks a test declares with @job(on=...) are unregistered after it."""
    before = set(registry.names())
    yield
    for name in set(registry.names()) - before:
        registry.unregister(name)


def jobs_of(task):
    return list(Job.objects.filter(task_name=task.name).order_by("id"))


# -- post_save on User: the SPEC's example -----------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_created_user_enqueues_one_job_after_commit_with_its_kwargs_and_options():
    queue = unique_queue()
    jobs.on(
        post_save,
        noop,
        sender=User,
        when=created,
        kwargs=user_kwargs,
        queue=queue,
        priority="high",
        tags=["signup"],
        metadata={"source": "post_save"},
        max_retries=5,
        timeout=7,
        delay=timedelta(minutes=1),
    )
    with transaction.atomic():
        user = User.objects.create(username="alice")
        assert jobs_of(noop) == []  # not before the commit
    [queued] = jobs_of(noop)
    assert queued.kwargs == {"user_id": user.pk}
    assert queued.args == []
    assert (queued.queue, queued.priority, queued.tags) == (queue, Priority.HIGH, ["signup"])
    assert queued.metadata == {"source": "post_save"}
    assert (queued.max_retries, queued.timeout) == (5, 7)
    assert queued.scheduled_at > timezone.now() + timedelta(seconds=30)


@pytest.mark.django_db(transaction=True)
def test_an_updated_user_enqueues_nothing_when_only_created_ones_count():
    jobs.on(post_save, noop, sender=User, when=created, kwargs=user_kwargs)
    user = User.objects.create(username="alice")
    assert len(jobs_of(noop)) == 1
    user.first_name = "Alice"
    user.save()
    assert len(jobs_of(noop)) == 1


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_transaction_enqueues_nothing():
    jobs.on(post_save, noop, sender=User, kwargs=user_kwargs)
    with pytest.raises(Rollback):
        with transaction.atomic():
            User.objects.create(username="alice")
            raise Rollback
    assert jobs_of(noop) == []
    assert not User.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_savepoint_enqueues_nothing_and_the_outer_commit_the_rest():
    jobs.on(post_save, noop, sender=User, kwargs=user_kwargs)
    with transaction.atomic():
        kept = User.objects.create(username="kept")
        with pytest.raises(Rollback):
            with transaction.atomic():
                User.objects.create(username="dropped")
                raise Rollback
    assert [j.kwargs for j in jobs_of(noop)] == [{"user_id": kept.pk}]


@pytest.mark.django_db(transaction=True)
def test_outside_a_transaction_the_job_is_enqueued_at_once():
    jobs.on(post_save, noop, sender=User, kwargs=user_kwargs)
    user = User.objects.create(username="alice")
    assert [j.kwargs for j in jobs_of(noop)] == [{"user_id": user.pk}]


@pytest.mark.django_db
def test_in_a_test_transaction_with_captured_on_commit_callbacks(
    django_capture_on_commit_callbacks,
):
    jobs.on(post_save, noop, sender=User, when=created, kwargs=user_kwargs)
    with django_capture_on_commit_callbacks(execute=True):
        user = User.objects.create(username="alice")
        assert jobs_of(noop) == []
    assert [j.kwargs for j in jobs_of(noop)] == [{"user_id": user.pk}]


@pytest.mark.django_db(transaction=True)
def test_arguments_are_taken_when_the_signal_fires():
    # post_delete: the instance still has its pk when the signal fires, not at the commit.
    jobs.on(post_delete, noop, sender=User, kwargs=user_kwargs)
    user = User.objects.create(username="alice")
    pk = user.pk
    with transaction.atomic():
        user.delete()
        assert user.pk is None
    assert [j.kwargs for j in jobs_of(noop)] == [{"user_id": pk}]


@pytest.mark.django_db(transaction=True)
def test_args_kwargs_and_options_may_be_plain_values_or_callables():
    queue = unique_queue()
    jobs.on(
        post_save,
        add,
        sender=User,
        args=lambda instance, **kw: [instance.pk, 1],
        kwargs={},
        queue=queue,
        owner=lambda instance, **kw: instance,
        unique_key=lambda instance, **kw: f"user-{instance.pk}",
    )
    jobs.on(post_save, add, sender=User, args=[1, 2], kwargs={}, queue=queue)
    user = User.objects.create(username="alice")
    first, second = jobs_of(add)
    assert (first.args, first.owner_id, first.unique_key) == (
        [user.pk, 1],
        user.pk,
        f"user-{user.pk}",
    )
    assert (second.args, second.owner_id, second.unique_key) == ([1, 2], None, None)
    # The unique key holds while the first job is unfinished: one more save, one more job.
    user.save()
    assert len(jobs_of(add)) == 3


@pytest.mark.django_db(transaction=True)
def test_the_callables_get_every_argument_of_the_signal():
    seen = []

    def when(**kwargs):
        seen.append(kwargs)
        return False

    jobs.on(post_save, noop, sender=User, when=when)
    user = User.objects.create(username="alice")
    [arguments] = seen
    assert arguments["signal"] is post_save
    assert arguments["sender"] is User
    assert arguments["instance"] == user
    assert (arguments["created"], arguments["raw"], arguments["using"]) == (True, False, "default")


# -- sender filtering, custom signals ----------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_only_the_sender_given_triggers():
    jobs.on(post_save, noop, sender=User, kwargs=user_kwargs)
    Group.objects.create(name="staff")
    assert jobs_of(noop) == []
    User.objects.create(username="alice")
    assert len(jobs_of(noop)) == 1


@pytest.mark.django_db(transaction=True)
def test_a_lazy_sender_app_label_model_name():
    jobs.on(post_save, noop, sender="auth.User", kwargs=user_kwargs)
    Group.objects.create(name="staff")
    User.objects.create(username="alice")
    assert len(jobs_of(noop)) == 1


@pytest.mark.django_db(transaction=True)
def test_without_a_sender_every_sender_triggers():
    jobs.on(post_save, noop, when=lambda sender, **kw: sender in (User, Group))
    Group.objects.create(name="staff")
    User.objects.create(username="alice")
    assert len(jobs_of(noop)) == 2


@pytest.mark.django_db(transaction=True)
def test_a_custom_signal():
    invoice_paid = Signal()
    jobs.on(invoice_paid, add, args=lambda amount, fee, **kw: [amount, fee])
    with transaction.atomic():
        invoice_paid.send(sender=None, amount=40, fee=2)
        assert jobs_of(add) == []
    assert [j.args for j in jobs_of(add)] == [[40, 2]]


@pytest.mark.django_db(transaction=True)
def test_a_custom_signal_sent_robustly_or_asynchronously():
    from asgiref.sync import async_to_sync

    invoice_paid = Signal()
    jobs.on(invoice_paid, add, args=lambda amount, **kw: [amount, 0])
    invoice_paid.send_robust(sender=None, amount=1)
    async_to_sync(invoice_paid.asend)(sender=None, amount=2)
    assert sorted(j.args[0] for j in jobs_of(add)) == [1, 2]


@pytest.mark.django_db(transaction=True)
def test_a_using_that_names_no_database_follows_the_jobs_database():
    paid = Signal()
    jobs.on(paid, noop)
    with transaction.atomic():
        paid.send(sender=None, using="not-a-database")
        paid.send(sender=None, using=["not", "a", "name"])
        assert jobs_of(noop) == []
    assert len(jobs_of(noop)) == 2


# -- errors when the signal fires: logged, never raised ----------------------------------


def boom(**kwargs):
    raise ZeroDivisionError("boom")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "broken",
    [
        {"when": boom},
        {"kwargs": boom},
        {"args": boom},
        {"priority": boom},
        {"kwargs": lambda instance, **kw: {"user": instance}},  # not JSON
        {"kwargs": lambda **kw: ["not", "a", "dict"]},
        {"args": lambda **kw: "not a list"},
        {"priority": lambda **kw: 500},
        {"unique_key": lambda **kw: ""},
        {"owner": lambda **kw: Group.objects.first()},
    ],
    ids=lambda broken: next(iter(broken)),
)
def test_an_error_building_the_job_is_logged_and_the_save_succeeds(broken, caplog):
    Group.objects.create(name="not a user")
    jobs.on(post_save, noop, sender=User, **broken)
    with caplog.at_level(logging.ERROR, logger="django_jobs"):
        with transaction.atomic():
            user = User.objects.create(username="alice")
    assert User.objects.filter(pk=user.pk).exists()
    assert jobs_of(noop) == []
    [record] = [r for r in caplog.records if getattr(r, "action", "") == "trigger_failed"]
    assert record.name == "django_jobs"
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None
    assert record.task == noop.name
    assert record.step == "build"
    message = record.getMessage()
    assert noop.name in message
    assert "django.db.models.signals.post_save" in message
    assert "auth.user" in message


@pytest.mark.django_db(transaction=True)
def test_an_error_writing_the_job_at_commit_is_logged(monkeypatch, caplog):
    def refuse(*args, **kwargs):
        raise RuntimeError("database said no")

    monkeypatch.setattr("django_jobs.triggers.enqueue_job", refuse)
    jobs.on(post_save, noop, sender=User)
    with caplog.at_level(logging.ERROR, logger="django_jobs"):
        with transaction.atomic():
            User.objects.create(username="alice")
    assert User.objects.filter(username="alice").exists()
    [record] = [r for r in caplog.records if getattr(r, "action", "") == "trigger_failed"]
    assert record.step == "enqueue"
    assert "database said no" in str(record.exc_info[1])


@pytest.mark.django_db(transaction=True)
def test_manual_transaction_management_never_breaks_the_sender(caplog):
    """Autocommit off outside atomic(): Django refuses on_commit() there; the trigger
    logs it and the sender's save goes on."""
    jobs.on(post_save, noop, sender=User)
    transaction.set_autocommit(False)
    try:
        with caplog.at_level(logging.ERROR, logger="django_jobs"):
            User.objects.create(username="manual")
        transaction.commit()
    finally:
        transaction.set_autocommit(True)
    assert User.objects.filter(username="manual").exists()
    [record] = [r for r in caplog.records if getattr(r, "action", "") == "trigger_failed"]
    assert record.step == "enqueue"


@pytest.mark.django_db(transaction=True)
def test_one_broken_trigger_leaves_the_others_working(caplog):
    jobs.on(post_save, noop, sender=User, kwargs=boom)
    jobs.on(post_save, add, sender=User, args=[1, 2])
    with caplog.at_level(logging.ERROR, logger="django_jobs"):
        User.objects.create(username="alice")
    assert jobs_of(noop) == []
    assert len(jobs_of(add)) == 1


# -- mistakes at on(): raised at once ----------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        ({"task": "no.such.task"}, TaskNotFound),
        ({"signal": "post_save"}, TypeError),
        ({"priority": 500}, ValueError),
        ({"queue": ""}, ValueError),
        ({"delay": -1}, ValueError),
        ({"timeout": 0}, ValueError),
        ({"max_retries": -1}, ValueError),
        ({"unique_key": ""}, ValueError),
        ({"delay": 1, "scheduled_at": timezone.now()}, ValueError),
        ({"no_such_option": 1}, TypeError),
        ({"batch": 1}, TypeError),
        ({"schedule": 1}, TypeError),
        ({"when": True}, TypeError),
        ({"args": "abc"}, TypeError),
        ({"args": {"a": 1}}, TypeError),
        ({"kwargs": [1]}, TypeError),
        ({"kwargs": {"a": {1, 2}}}, TypeError),  # not JSON
        ({"args": [object()]}, TypeError),
        ({"dispatch_uid": ""}, TypeError),
    ],
)
def test_a_bad_task_or_option_raises_at_once(arguments, error):
    arguments = {"signal": post_save, "task": noop, "sender": User, **arguments}
    with pytest.raises(error):
        jobs.on(arguments.pop("signal"), arguments.pop("task"), **arguments)
    assert connected_triggers() == [h for h in connected_triggers() if h.task is not noop]


def test_a_task_name_is_accepted():
    handle = jobs.on(order_placed, "tests.testapp.tasks.noop")
    assert handle.task is noop


# -- disconnect and duplicates -----------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_disconnect_stops_it():
    handle = jobs.on(post_save, noop, sender=User, kwargs=user_kwargs)
    assert isinstance(handle, ConnectedTrigger)
    assert handle.connected
    assert "post_save" in repr(handle)
    User.objects.create(username="alice")
    assert handle.disconnect() is True
    assert handle.disconnect() is False
    assert not handle.connected
    User.objects.create(username="bob")
    assert len(jobs_of(noop)) == 1


@pytest.mark.django_db(transaction=True)
def test_disconnect_of_a_lazy_sender():
    handle = jobs.on(post_save, noop, sender="auth.User")
    assert handle.disconnect() is True
    User.objects.create(username="alice")
    assert jobs_of(noop) == []


def wire(label="a"):
    """A module's top-level jobs.on(...): each run makes new lambdas."""
    return jobs.on(
        post_save,
        record_label,
        sender=User,
        when=lambda created, **kw: created,
        kwargs=lambda instance, **kw: {"label": f"{label}:{instance.pk}"},
    )


@pytest.mark.django_db(transaction=True)
def test_the_same_on_twice_connects_once_and_returns_the_same_handle():
    # A module imported twice, or a ready() run twice.
    first = wire()
    assert wire() is first
    assert jobs.on(post_save, noop, sender=User, kwargs=user_kwargs) is jobs.on(
        post_save, noop, sender=User, kwargs=user_kwargs
    )
    User.objects.create(username="alice")
    assert len(jobs_of(record_label)) == 1
    assert len(jobs_of(noop)) == 1


@pytest.mark.django_db(transaction=True)
def test_triggers_that_differ_in_anything_connect_each():
    handles = {
        wire("a"),
        wire("b"),  # a value the callables close over
        jobs.on(post_save, noop, sender=User, kwargs=user_kwargs),
        jobs.on(post_save, noop, sender=User, kwargs=user_kwargs, queue="other"),
        jobs.on(post_save, noop, sender=User, kwargs=user_kwargs, when=created),
        jobs.on(post_save, noop, sender=Group),
        jobs.on(post_delete, noop, sender=User),
    }
    assert len(handles) == 7
    User.objects.create(username="alice")
    assert len(jobs_of(record_label)) == 2
    assert sorted(j.queue for j in jobs_of(noop)) == ["default", "default", "other"]


@pytest.mark.django_db(transaction=True)
def test_an_explicit_dispatch_uid_connects_once_the_first_wins():
    first = jobs.on(post_save, noop, sender=User, dispatch_uid="welcome", queue="one")
    assert jobs.on(post_save, noop, sender=User, dispatch_uid="welcome", queue="two") is first
    User.objects.create(username="alice")
    assert [j.queue for j in jobs_of(noop)] == ["one"]
    first.disconnect()
    second = jobs.on(post_save, noop, sender=User, dispatch_uid="welcome", queue="two")
    assert second is not first
    User.objects.create(username="bob")
    assert [j.queue for j in jobs_of(noop)] == ["one", "two"]


def test_on_has_no_async_twin():
    # It does no I/O: async code calls it as it is.
    assert not hasattr(jobs, "aon")


# -- @job(on=...) ------------------------------------------------------------------------


def test_declared_triggers_listen_from_start_up():
    # tests/testapp/jobs.py is imported by discovery in AppConfig.ready().
    tasks = {(h.task_name, h.signal) for h in connected_triggers()}
    assert (ship_order.name, order_placed) in tasks
    assert (audit_order.name, order_placed) in tasks
    assert (audit_order.name, order_cancelled) in tasks


@pytest.mark.django_db(transaction=True)
def test_declared_triggers_enqueue():
    with transaction.atomic():
        order_placed.send(sender=None, order_id=7, paid=True)
        order_placed.send(sender=None, order_id=8, paid=False)  # when= says no
        order_cancelled.send(sender=None, order_id=9)
    assert [(j.kwargs, j.queue) for j in jobs_of(ship_order)] == [({"order_id": 7}, "orders")]
    audits = [(j.kwargs, j.queue, j.priority) for j in jobs_of(audit_order)]
    assert audits == [
        ({"order_id": 7}, "audit", Priority.NORMAL),
        ({"order_id": 8}, "audit", Priority.NORMAL),
        ({"order_id": 9, "event": "cancelled"}, "audit", Priority.LOW),
    ]


@pytest.mark.django_db(transaction=True)
def test_job_on_a_model_signal(declared):
    task = job(
        name="tests.triggers.welcome",
        queue="welcome",
        on=post_save,
        sender=User,
        when=created,
        kwargs=user_kwargs,
    )(welcome)
    assert [h.task_name for h in connected_triggers()].count(task.name) == 1
    user = User.objects.create(username="alice")
    user.save()
    assert [(j.kwargs, j.queue) for j in jobs_of(task)] == [({"user_id": user.pk}, "welcome")]


@pytest.mark.django_db(transaction=True)
def test_job_on_several_signals(declared):
    reindexing = job(name="tests.triggers.reindex", on=[post_save, post_delete], sender=Group)(
        reindex
    )
    auditing = job(
        name="tests.triggers.audit",
        on=[
            trigger(post_save, sender=Group, kwargs={"event": "saved"}),
            trigger(post_delete, sender=Group, kwargs={"event": "deleted"}, queue="audit"),
        ],
    )(audit)
    group = Group.objects.create(name="staff")
    group.delete()
    assert len(jobs_of(reindexing)) == 2
    assert [(j.kwargs, j.queue) for j in jobs_of(auditing)] == [
        ({"event": "saved"}, "default"),
        ({"event": "deleted"}, "audit"),
    ]


def test_job_on_mistakes_raise_at_declaration(declared):
    with pytest.raises(TypeError, match="need on="):
        job(name="tests.triggers.a", sender=User)(noop.func)
    with pytest.raises(TypeError, match="carries its own"):
        job(name="tests.triggers.b", on=[trigger(post_save)], sender=User)(noop.func)
    with pytest.raises(TypeError, match="takes signals"):
        job(name="tests.triggers.c", on="post_save")(noop.func)
    with pytest.raises(TypeError, match="Unknown trigger option"):
        trigger(post_save, bogus=1)


def test_job_on_with_a_bad_option_raises_and_registers_nothing(declared):
    with pytest.raises(ValueError, match="Priority must be"):
        job(
            name="tests.triggers.bad",
            on=[trigger(order_placed), trigger(order_placed, priority=500)],
        )(shipped)
    assert "tests.triggers.bad" not in registry.names()
    assert not [h for h in connected_triggers() if h.task_name == "tests.triggers.bad"]


# -- end to end --------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_worker_runs_the_triggered_job(workers):
    queue = unique_queue()
    jobs.on(
        post_save,
        record_label,
        sender=User,
        when=created,
        kwargs=lambda instance, **kw: {"label": f"welcome {instance.username}"},
        queue=queue,
    )
    with transaction.atomic():
        User.objects.create(username="alice")
    code, out = workers.run("--burst", "--queues", queue)
    assert code == 0, out
    [done] = jobs_of(record_label)
    assert done.status == "completed", out
    assert list(Execution.objects.values_list("label", flat=True)) == ["welcome alice"]


@pytest.mark.skipif(
    not hasattr(Task, "_reconstruct"), reason="the backport's tasks do not pickle (5.2)"
)
def test_a_task_with_triggers_pickles_without_them():
    unpickled = pickle.loads(pickle.dumps(ship_order))
    assert unpickled == ship_order
    assert unpickled.triggers == ()
    assert registry.get(ship_order.name).triggers == ship_order.triggers
