"""The job queue: jobs run in child processes, in order, one at a time; stop and cancel; runs saved."""

from __future__ import annotations

import json
import os
import signal

import numpy as np
import pytest
from helpers import blobs_dataset, wait_for

from mnist_core.config import TrainConfig
from mnist_core.history import EpochMetrics, History
from mnist_core.jobs import STARTING, WARMING, Job, JobQueue, QueueError
from mnist_core.runs import list_runs, load_run
from mnist_core.visual import LIVE_POINTS, live_chart_data


@pytest.fixture
def make_queue():
    """JobQueue(...) whose trainers are ended after the test."""
    made = []

    def make(**kwargs) -> JobQueue:
        made.append(JobQueue(**kwargs))
        return made[-1]

    yield make
    for queue in made:
        queue.close()


def test_jobs_queue_in_order_and_save_runs(tmp_path, data_dir, make_queue):
    queue = make_queue(root=tmp_path / "runs", max_concurrent=1, data_dir=data_dir)
    jobs = [
        queue.submit(TrainConfig(epochs=2, batch_size=64, seed=s, optimiser="ADAM", lr=0.01), owner=f"o{s}")
        for s in range(3)
    ]
    wait_for(lambda: jobs[0].state == "running")
    assert [queue.position(j.id) for j in jobs[1:]] == [1, 2]
    assert queue.wait_idle(timeout=300)
    assert [j.outcome for j in jobs] == ["finished"] * 3
    assert jobs[0].started_at <= jobs[1].started_at <= jobs[2].started_at
    saved = sorted(p.name for p in list_runs(tmp_path / "runs"))
    assert saved == sorted(j.id for j in jobs)
    run = load_run(jobs[2].run_dir)
    assert run.config.seed == 2 and run.meta["status"] == "finished"
    # the live mirror in the parent holds exactly what the child saved
    assert jobs[2].history.batch_losses == pytest.approx(run.history.batch_losses)
    assert len(jobs[2].history.epochs) == 2 and jobs[2].history.status == "finished"
    assert run.report.test_acc > 0.5


def test_stop_running_and_cancel_waiting(tmp_path, data_dir, make_queue):
    queue = make_queue(root=tmp_path / "runs", max_concurrent=1, data_dir=data_dir)
    long = queue.submit(TrainConfig(epochs=100, batch_size=16), owner="a")
    waiting = queue.submit(TrainConfig(epochs=1), owner="b")
    wait_for(lambda: long.history is not None and long.history.step >= 5)
    queue.stop(waiting.id, "b")
    assert waiting.done and waiting.outcome == "cancelled" and queue.position(waiting.id) is None
    queue.stop(long.id, "a")
    assert queue.wait_idle(timeout=120)
    assert long.outcome == "stopped"
    run = load_run(long.run_dir)
    assert run.meta["status"] == "stopped" and 5 <= len(run.history.batch_losses) < run.history.total_steps
    assert [p.name for p in list_runs(tmp_path / "runs")] == [long.id]  # the cancelled job left nothing


def test_failed_start_is_reported(tmp_path, make_queue):
    queue = make_queue(root=tmp_path / "runs", data_dir=tmp_path / "empty")
    job = queue.submit(TrainConfig(epochs=1))
    assert queue.wait_idle(timeout=120)
    assert job.outcome == "failed" and "no IDX files" in job.message


def test_bad_config_is_refused_before_queueing(tmp_path, make_queue):
    queue = make_queue(root=tmp_path)
    with pytest.raises(ValueError, match="learning rate"):
        queue.submit(TrainConfig(lr=-1))
    assert queue.active() == []


def test_diverged_job_is_saved_with_its_message(tmp_path, data_dir, make_queue):
    queue = make_queue(root=tmp_path / "runs", data_dir=data_dir)
    job = queue.submit(TrainConfig(epochs=3, batch_size=16, lr=1e9))
    assert queue.wait_idle(timeout=120)
    assert job.outcome == "diverged" and "lower" in job.message
    run = load_run(job.run_dir)
    assert run.meta["status"] == "diverged" and run.report is None
    assert len(run.history.batch_losses) == job.history.step < run.history.total_steps


def test_stop_right_after_submit_ends_cleanly(tmp_path, data_dir, make_queue):
    """Stop pressed while the job is handed to the trainer: no crash, nothing half-saved, the trainer stays warm."""
    queue = make_queue(root=tmp_path / "runs", data_dir=data_dir)
    job = queue.submit(TrainConfig(epochs=100, batch_size=16), owner="a")
    wait_for(lambda: job.process is not None, every=0.001)  # Stop lands while the job is handed over
    queue.stop(job.id, "a")
    assert queue.wait_idle(timeout=120)
    assert job.outcome in ("cancelled", "stopped"), job.message
    if job.outcome == "stopped":  # it had begun: then its partial run is saved
        assert load_run(job.run_dir).meta["status"] == "stopped"
    else:
        assert list_runs(tmp_path / "runs") == []
    assert queue.wait_warm(timeout=60) and queue.trainers[0].proc is job.process  # the same process, ready again


def test_runs_are_saved_where_the_server_looks(tmp_path, data_dir, monkeypatch, make_queue):
    """A relative runs folder means the server's working directory, not the child's."""
    monkeypatch.chdir(tmp_path)
    queue = make_queue(root="relative-runs", data_dir=data_dir)
    job = queue.submit(TrainConfig(epochs=1, batch_size=128))
    assert queue.wait_idle(timeout=120)
    assert job.outcome == "finished"
    assert job.run_dir.parent == tmp_path / "relative-runs"


def test_warm_trainer_takes_job_after_job_and_stays_clean(tmp_path, data_dir, make_queue, monkeypatch):
    """No new process (hence no new import) per job, and a job trained after another one gives exactly
    the losses it gives as the process's first job."""
    monkeypatch.setenv("MNIST_STEP_LOG", str(tmp_path / "steps"))  # each job's step times (train.StepClock)
    queue = make_queue(root=tmp_path / "runs", data_dir=data_dir)
    assert queue.wait_warm(timeout=120)
    pid = queue.trainers[0].pid
    jobs = []
    for seed in (0, 5, 0):
        jobs.append(queue.submit(TrainConfig(epochs=1, batch_size=64, seed=seed), owner="me"))
        assert queue.wait_idle(timeout=120)
    assert [j.outcome for j in jobs] == ["finished"] * 3
    assert {j.process.pid for j in jobs} == {pid} and queue.started_processes == 1
    assert jobs[0].history.batch_losses == jobs[2].history.batch_losses
    assert jobs[0].history.batch_losses != jobs[1].history.batch_losses
    logs = [json.loads(p.read_text()) for p in (tmp_path / "steps").glob("page-*.json")]
    assert sorted(len(log["seconds"]) for log in logs) == [j.history.step for j in jobs]  # one log a job, no warm-up


def test_pause_step_and_lr_change_are_recorded_in_the_run(tmp_path, data_dir, make_queue):
    queue = make_queue(root=tmp_path / "runs", data_dir=data_dir)
    job = queue.submit(TrainConfig(epochs=100, batch_size=16), owner="me")
    wait_for(lambda: job.history is not None and job.history.step >= 3)
    queue.control(job.id, "me", "pause")
    wait_for(lambda: job.history.paused)
    paused_at = job.history.step
    assert len(job.history.batch_losses) == paused_at  # everything up to the pause is drawn
    queue.control(job.id, "me", "step", batches=2)
    wait_for(lambda: job.history.step == paused_at + 2 and job.history.paused)
    queue.control(job.id, "me", "set", lr=0.01)
    queue.control(job.id, "me", "step")
    wait_for(lambda: job.history.step == paused_at + 3)
    assert job.history.lr_schedule == [(0, 0.1), (paused_at + 2, 0.01)]
    # the paused model was saved with its report, marked "interrupted" in case the process dies
    checkpoint = load_run(tmp_path / "runs" / job.id)
    assert checkpoint.meta["status"] == "interrupted" and checkpoint.report is not None
    with pytest.raises(QueueError, match="learning rate"):
        queue.control(job.id, "me", "set", lr=-1)
    queue.control(job.id, "me", "resume")
    wait_for(lambda: not job.history.paused and job.history.step > paused_at + 5)
    queue.stop(job.id, "me")
    assert queue.wait_idle(timeout=120)
    run = load_run(job.run_dir)
    assert run.meta["status"] == "stopped"
    assert run.history.lr_schedule == job.history.lr_schedule == [(0, 0.1), (paused_at + 2, 0.01)]
    assert run.history.batch_losses == pytest.approx(job.history.batch_losses)


def test_only_the_owner_can_steer_and_the_queue_has_limits(tmp_path, data_dir, make_queue):
    queue = make_queue(root=tmp_path / "runs", data_dir=data_dir, max_waiting=1)
    mine = queue.submit(TrainConfig(epochs=100, batch_size=16), owner="victim")
    wait_for(lambda: mine.history is not None and mine.history.step > 0)
    for action in ("stop", "pause", "resume", "step", "set"):
        with pytest.raises(QueueError, match="another session"):
            queue.control(mine.id, "attacker", action, lr=0.5)
    with pytest.raises(QueueError, match="another session"):
        queue.stop(mine.id, "")
    with pytest.raises(QueueError, match="already have a run"):
        queue.submit(TrainConfig(epochs=1), owner="victim")
    assert queue.latest_of("attacker") is None and queue.busy() == (1, 0)
    waiting = queue.submit(TrainConfig(epochs=1), owner="second")
    with pytest.raises(QueueError, match="queue is full"):
        queue.submit(TrainConfig(epochs=1), owner="third")
    queue.stop(waiting.id, "second")
    step = mine.history.step
    wait_for(lambda: mine.history.step > step)  # the victim's run went on through all of it
    assert not mine.done and not mine.history.paused
    queue.stop(mine.id, "victim")
    assert queue.wait_idle(timeout=120) and mine.outcome == "stopped"


def test_a_killed_trainer_is_replaced_and_its_run_kept(tmp_path, data_dir, make_queue):
    queue = make_queue(root=tmp_path / "runs", data_dir=data_dir)
    job = queue.submit(TrainConfig(epochs=100, batch_size=16), owner="me")
    wait_for(lambda: job.history is not None and job.history.step >= 3)
    queue.control(job.id, "me", "pause")  # a pause saves a checkpoint
    wait_for(lambda: job.history.paused and (tmp_path / "runs" / job.id / "run.json").exists())
    old = job.process.pid
    os.kill(old, signal.SIGKILL)  # as the kernel's OOM killer would
    assert queue.wait_idle(timeout=120)
    assert job.outcome == "interrupted" and "ended unexpectedly" in job.message
    run = load_run(job.run_dir)
    assert run.meta["status"] == "interrupted" and len(run.history.batch_losses) == job.history.step
    assert queue.wait_warm(timeout=120) and queue.trainers[0].pid != old
    again = queue.submit(TrainConfig(epochs=1, batch_size=64), owner="me")
    assert queue.wait_idle(timeout=120) and again.outcome == "finished"


def test_a_server_that_goes_away_leaves_the_run_interrupted(tmp_path, data_dir, make_queue):
    queue = make_queue(root=tmp_path / "runs", data_dir=data_dir)
    job = queue.submit(TrainConfig(epochs=100, batch_size=16), owner="me")
    wait_for(lambda: job.history is not None and job.history.step >= 3)
    queue.close()  # what the server's exit does to the trainer's stdin
    run = load_run(tmp_path / "runs" / job.id)
    assert run.meta["status"] == "interrupted"
    assert run.meta["message"].startswith("The web server went away")


def test_stop_while_the_trainer_warms_frees_the_job_at_once(tmp_path, data_dir, make_queue):
    queue = make_queue(root=tmp_path / "runs", data_dir=data_dir)  # its trainer is only starting
    job = queue.submit(TrainConfig(epochs=1), owner="me")
    queue.stop(job.id, "me")
    assert job.done and job.outcome == "cancelled"  # at once, not when the trainer is ready
    assert queue.wait_warm(timeout=120) and queue.wait_idle(timeout=60)
    assert job.outcome == "cancelled" and list_runs(tmp_path / "runs") == []
    again = queue.submit(TrainConfig(epochs=1, batch_size=64), owner="me")  # the owner is free again
    assert queue.wait_idle(timeout=120) and again.outcome == "finished"


def test_lr_find_runs_in_the_warm_trainer_and_saves_nothing(tmp_path, data_dir, make_queue):
    queue = make_queue(root=tmp_path / "runs", data_dir=data_dir)
    job = queue.submit(TrainConfig(optimiser="ADAM", batch_size=32), owner="me", task="lr-find")
    assert queue.wait_idle(timeout=120)
    assert job.outcome == "finished" and "Suggested learning rate" in job.message
    curve = job.lr_curve
    assert curve.lrs == sorted(curve.lrs) and 1e-6 <= curve.lrs[0] < curve.lrs[-1] <= 10
    assert len(curve.losses) == len(curve.smoothed) == len(curve.lrs) >= 3
    assert curve.lrs[0] <= curve.suggested_lr <= curve.lrs[-1]
    assert list_runs(tmp_path / "runs") == [] and queue.latest_of("me") is None  # not a training run
    assert queue.latest_of("me", task="lr-find") is job
    run = queue.submit(TrainConfig(epochs=1, batch_size=64, lr=curve.suggested_lr), owner="me")
    assert queue.wait_idle(timeout=120) and run.outcome == "finished" and run.process is job.process


def test_a_late_control_never_reaches_the_next_job(tmp_path, data_dir, make_queue):
    """A Stop meant for a job that has ended is dropped by the trainer, not applied to the next job."""
    from mnist_core import protocol as p

    queue = make_queue(root=tmp_path / "runs", data_dir=data_dir)
    first = queue.submit(TrainConfig(epochs=1, batch_size=64), owner="a")
    assert queue.wait_idle(timeout=120) and first.outcome == "finished"
    second = queue.submit(TrainConfig(epochs=100, batch_size=16), owner="b")
    wait_for(lambda: second.history is not None and second.history.step > 0)
    queue.trainers[0].send(p.Control(action="stop", job_id=first.id))  # as if the page thread was slow
    step = second.history.step
    wait_for(lambda: second.history.step > step + 20)
    assert not second.done
    queue.stop(second.id, "b")
    assert queue.wait_idle(timeout=120) and second.outcome == "stopped"


def test_close_leaves_no_trainer_behind(tmp_path, data_dir):
    queue = JobQueue(root=tmp_path / "runs", data_dir=data_dir)
    job = queue.submit(TrainConfig(epochs=100, batch_size=16), owner="a")
    wait_for(lambda: job.history is not None and job.history.step > 0)
    queue.close()
    wait_for(lambda: not any(slot.is_alive() for slot in queue._slots))  # the slots ended...
    assert job.done and job.process.poll() is not None  # ...with their trainer
    assert queue.started_processes == 1  # and none was started after the close
    assert all(t is None or t.proc.poll() is not None for t in queue.trainers)


def test_a_watched_digit_and_the_layers_health_come_back(tmp_path, data_dir, make_queue):
    """Watch views arrive while the job trains, and the last one is what the saved model makes of the digit;
    health readings arrive every few batches; the run is saved with its weight snapshots."""

    from mnist_core.runs import load_snapshots
    from mnist_core.watch import replay, view_digit

    queue = make_queue(root=tmp_path / "runs", data_dir=data_dir)
    seen = []
    job = queue.submit(TrainConfig(epochs=2, batch_size=16, optimiser="ADAM", lr=0.01), owner="me", watch=7)
    wait_for(lambda: job.watch is not None and (seen.append(job.watch.step) or job.done), every=0.005)
    assert queue.wait_idle(timeout=120) and job.outcome == "finished"
    steps = job.history.total_steps  # 512 images in batches of 16: 64 steps
    assert seen[0] == 0 and job.watch.step == steps and seen == sorted(seen)  # the start, then onwards
    image = blobs_dataset(n_train=512, n_test=100).test_images[7]  # what data_dir holds
    saved = view_digit(load_run(job.run_dir).model, image, steps)
    np.testing.assert_allclose(job.watch.probs, saved.probs, rtol=1e-5, atol=1e-7)
    for live, final in zip(job.watch.maps, saved.maps):
        assert np.array_equal(live.data, final.data)
    # health: step 1, then every health_every(16) = 160 steps: none more in 64 steps but the first
    assert [s.step for s in job.health_log] == [1] and job.health is job.health_log[-1]
    assert list(job.health.layers) == ["conv 1", "conv 2", "conv 3", "conv 4", "dense"]
    assert sorted(load_snapshots(job.run_dir)) == [0, 1, 10, 32, 50, 64]
    # the trainer replayed the digit at every saved step: what the page would compute, number for number
    replayed = replay(job.run_dir, image)
    assert [v.step for v in job.replay] == [v.step for v in replayed] == [0, 1, 10, 32, 50, 64]
    for mine, theirs in zip(job.replay, replayed):
        np.testing.assert_allclose(mine.probs, theirs.probs, rtol=1e-5, atol=1e-7)
        assert all(np.array_equal(a.data, b.data) for a, b in zip(mine.maps, theirs.maps))


def test_health_every_few_batches_and_no_watch_unless_asked(tmp_path, data_dir, make_queue):
    queue = make_queue(root=tmp_path / "runs", data_dir=data_dir)
    job = queue.submit(TrainConfig(epochs=6, batch_size=128), owner="me")
    assert queue.wait_idle(timeout=120) and job.outcome == "finished"
    assert [s.step for s in job.health_log] == [1, 20]  # 24 steps, measured every 20
    assert job.watch is None and job.watch_digit is None and job.replay is None


def test_a_digit_to_watch_that_is_not_one_is_refused(tmp_path, data_dir, make_queue):
    queue = make_queue(root=tmp_path / "runs", data_dir=data_dir)
    with pytest.raises(QueueError, match="The digit to watch must be"):
        queue.submit(TrainConfig(epochs=1), owner="me", watch=[300] * 784)
    assert queue.active() == []
    job = queue.submit(TrainConfig(epochs=1), owner="me", watch=100)  # the test set has 100 images: 0 to 99
    assert queue.wait_idle(timeout=120)
    assert job.outcome == "failed" and "test image 100" in job.message and "(0 to 99)" in job.message
    drawn = queue.submit(TrainConfig(epochs=1, batch_size=64), owner="me", watch=[0] * 392 + [255] * 392)
    assert queue.wait_idle(timeout=120) and drawn.outcome == "finished" and drawn.watch.step == 8


def read_feed(queue: JobQueue, job) -> dict:
    return json.loads((queue.feed.folder / f"{job.feed_token}.json").read_text())


def test_each_job_feeds_its_page_its_place_its_curve_and_its_end(tmp_path, data_dir, make_queue):
    """The live feed (mnist_core.feed): a file per job, at an unguessable address, with the place of a waiting
    job, the chart, progress line and digit of a training one, and a mode that changes with what the page says."""
    from mnist_core.feed import Feed

    (tmp_path / "feed").mkdir()
    (tmp_path / "feed" / "left-by-an-old-server.json").write_text("{}")
    queue = make_queue(
        root=tmp_path / "runs", data_dir=data_dir, feed=Feed(tmp_path / "feed", "app/static/feed"), max_concurrent=1
    )
    assert not (tmp_path / "feed" / "left-by-an-old-server.json").exists()
    first = queue.submit(TrainConfig(epochs=40, batch_size=8), owner="a", watch=3)
    second = queue.submit(TrainConfig(epochs=1, batch_size=64), owner="b")
    third = queue.submit(TrainConfig(epochs=1, batch_size=64), owner="c")
    assert first.feed_url == f"app/static/feed/{first.feed_token}.json" and len(first.feed_token) >= 20
    assert len({first.feed_token, second.feed_token, third.feed_token}) == 3

    wait_for(lambda: read_feed(queue, first).get("progress") and "watch" in read_feed(queue, first))
    feed = read_feed(queue, first)
    assert feed["state"] == "running" and feed["mode"] == first.mode
    assert feed["chart"]["total"] == 40 * 64 and feed["chart"]["steps"][-1] >= 1
    assert feed["progress"][1].startswith("epoch ") and 0 < feed["progress"][0] < 1
    assert feed["watch"]["layers"][0]["name"] == "conv 1" and len(feed["watch"]["probs"]) == 10
    # Waiting jobs: their place in words, and one mode for all of them (a place change redraws no page).
    assert read_feed(queue, second)["progress"] == [None, queue.waiting_line(second.id)]
    assert "place 1 of 2 waiting (1 training now)" in queue.waiting_line(second.id)
    assert read_feed(queue, second)["mode"] == read_feed(queue, third)["mode"] == second.mode == third.mode
    wait_for(lambda: read_feed(queue, first)["notes"])  # the epoch's line, once an epoch has ended
    assert read_feed(queue, first)["notes"][0].startswith("after epoch 1: test accuracy ")

    # A new learning rate: its marker on the chart and its line above it; the page needs no redraw for it.
    before = read_feed(queue, first)["mode"]
    queue.control(first.id, "a", "set", lr=0.05)
    wait_for(lambda: read_feed(queue, first)["chart"]["lr"] == [[first.history.lr_schedule[-1][0], "0.05"]])
    changed_at = first.history.lr_schedule[-1][0] + 1
    assert f"lr 0.1 → 0.05 from step {changed_at}" in read_feed(queue, first)["notes"]
    assert read_feed(queue, first)["mode"] == before == "running|False"
    queue.control(first.id, "a", "pause")  # a pause is a new mode: the page redraws with Resume and Step
    wait_for(lambda: read_feed(queue, first)["mode"] == "running|True")
    # A paused job's page follows the same feed (no timer): a step shows in it, as does where it paused.
    assert first.snapshot().feed == first.feed_url and read_feed(queue, first)["paused"] is True
    paused_at = first.history.step
    assert read_feed(queue, first)["progress"][1].split(" · ")[1] == f"paused at step {paused_at}"
    queue.control(first.id, "a", "step", batches=1)
    wait_for(lambda: read_feed(queue, first)["chart"]["steps"][-1] == paused_at + 1)
    assert f"paused at step {paused_at + 1}" in read_feed(queue, first)["progress"][1]

    queue.stop(second.id, "b")  # a cancel moves the line up
    assert read_feed(queue, second)["state"] == "done"
    assert "place 1 of 1 waiting" in read_feed(queue, third)["progress"][1]
    queue.stop(first.id, "a")
    assert queue.wait_idle(timeout=120)
    assert read_feed(queue, first)["state"] == "done" and read_feed(queue, first)["mode"] == first.mode
    assert read_feed(queue, third)["state"] == "done" and read_feed(queue, third)["progress"][0] == 1.0
    # How each ended, for the chart to show at once: the outcome's colour and the page's own words.
    assert read_feed(queue, third)["outcome"] == ["green", third.outcome_text()]
    assert "Test accuracy" in third.outcome_text() and "The run is saved." in third.outcome_text()
    assert read_feed(queue, first)["outcome"] == ["blue", first.outcome_text()]
    assert read_feed(queue, second)["outcome"][1].startswith("Cancelled while waiting")
    # The curve the feed carried, smoothed a chunk at a time as losses came: the finished run's own numbers.
    h = first.history
    whole = live_chart_data(h.batch_losses, h.epochs, h.full_losses, h.total_steps, h.lr_schedule)
    assert read_feed(queue, first)["chart"] == whole and len(whole["smooth"]) == min(h.step, LIVE_POINTS)


def test_a_feed_that_cannot_be_written_is_only_slower(tmp_path):
    """publish says False (the page then follows its job on its timer) and raises nothing."""
    import shutil

    from mnist_core.feed import Feed

    feed = Feed(tmp_path / "feed", "app/static/feed/")
    assert feed.publish("token", {"mode": "a"}) and feed.url("token") == "app/static/feed/token.json"
    assert not feed.publish("token", {"loss": float("nan")})  # not JSON: the last good file stays
    assert json.loads((tmp_path / "feed" / "token.json").read_text()) == {"mode": "a"}
    shutil.rmtree(tmp_path / "feed")
    assert not feed.publish("token", {"mode": "b"})
    feed.remove("token")  # gone already: nothing to do


def test_the_lines_above_the_chart_follow_the_job_from_queue_to_end():
    """Job.live_lines: what the feed shows above a training chart and the page above a paused or ended one."""
    job = Job(id="j", config=TrainConfig(epochs=2))
    assert job.live_lines("place 1 of 1 waiting") == ((None, "place 1 of 1 waiting"), [], None)
    job.state, job.phase, job.history = "running", "warming", History(total_steps=20, steps_per_epoch=10)
    assert job.live_lines() == ((None, WARMING), [], None)
    job.phase = "training"
    assert job.live_lines() == ((None, STARTING), [], None)
    h = job.history
    h.step, h.epoch, h.images_done, h.train_seconds = 10, 1, 1280, 0.5
    h.epochs.append(
        EpochMetrics(epoch=1, step=10, train_loss=0.5, train_acc=0.8, test_loss=0.4, test_acc=0.85, seconds=0.5)
    )
    h.lr_schedule[:] = [(0, 0.1), (6, 0.05)]
    (share, text), notes, warning = job.live_lines()
    assert share == 0.5 and text.startswith("epoch 1/2 · step 10/20 · 2,560 images/s")
    assert notes == ["after epoch 1: test accuracy 85.00%, train loss 0.5000", "lr 0.1 → 0.05 from step 7"]
    assert warning is None
    h.paused = True
    assert "paused at step 10" in job.live_lines()[0][1]
    # a job stopped before its first batch has no progress to tell: its outcome says how it ended
    stopped = Job(id="k", config=TrainConfig(), state="done", history=History(total_steps=20))
    assert stopped.live_lines() == (None, [], None)
