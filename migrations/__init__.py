"""The database schema, as named migrations applied in order by ``sqlite_utils.Migrations``.

Never edit a migration that has shipped: add a new one. ``python -m bot migrate``
applies whatever is pending and is safe to run any number of times.
"""

from __future__ import annotations

from sqlite_utils import Database, Migrations

migrations = Migrations("inductor-bot")


@migrations()
def m001_ci_history(db: Database) -> None:
    """Raw CI facts, kept whole so every derived table can be recomputed from them."""
    db.executescript(
        """
        CREATE TABLE commits (
            repo TEXT NOT NULL,
            branch TEXT NOT NULL,
            sha TEXT NOT NULL,
            position INTEGER NOT NULL,
            title TEXT NOT NULL DEFAULT '',
            author TEXT NOT NULL DEFAULT '',
            pr_number INTEGER,
            time TEXT,
            url TEXT,
            on_branch INTEGER NOT NULL DEFAULT 1,
            recorded_at TEXT NOT NULL,
            PRIMARY KEY (repo, branch, sha)
        );
        CREATE INDEX commits_position ON commits (repo, branch, position);

        CREATE TABLE job_results (
            repo TEXT NOT NULL,
            job_id INTEGER NOT NULL,
            sha TEXT NOT NULL,
            branch TEXT,
            workflow TEXT NOT NULL,
            job_name TEXT NOT NULL,
            job_key TEXT NOT NULL,
            run_id INTEGER,
            attempt INTEGER NOT NULL DEFAULT 1,
            status TEXT NOT NULL,
            conclusion TEXT,
            html_url TEXT,
            log_url TEXT,
            started_at TEXT,
            completed_at TEXT,
            failure_lines TEXT NOT NULL DEFAULT '[]',
            source TEXT NOT NULL,
            received_at TEXT NOT NULL,
            PRIMARY KEY (repo, job_id)
        );
        CREATE INDEX job_results_cell ON job_results (repo, job_key, sha);
        CREATE INDEX job_results_sha ON job_results (repo, sha);

        CREATE TABLE cells (
            repo TEXT NOT NULL,
            branch TEXT NOT NULL,
            job_key TEXT NOT NULL,
            sha TEXT NOT NULL,
            position INTEGER NOT NULL,
            status TEXT NOT NULL,
            time TEXT,
            PRIMARY KEY (repo, branch, job_key, sha)
        );
        CREATE INDEX cells_walk ON cells (repo, branch, job_key, position);

        CREATE TABLE deliveries (
            source TEXT NOT NULL,
            delivery_id TEXT NOT NULL,
            event TEXT NOT NULL,
            received_at TEXT NOT NULL,
            outcome TEXT NOT NULL,
            detail TEXT,
            PRIMARY KEY (source, delivery_id)
        );
        """
    )


@migrations()
def m002_alerts(db: Database) -> None:
    """Alerts, the jobs in them, and each alert's timeline of events."""
    db.executescript(
        """
        CREATE TABLE alerts (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            route TEXT NOT NULL,
            repo TEXT NOT NULL,
            branch TEXT NOT NULL,
            team TEXT NOT NULL,
            priority TEXT NOT NULL,
            kind TEXT NOT NULL DEFAULT 'streak',
            title TEXT,
            state TEXT NOT NULL DEFAULT 'open',
            opened_at TEXT NOT NULL,
            resolved_at TEXT,
            resolved_sha TEXT,
            resolved_by TEXT,
            resolve_reason TEXT,
            range_last_green INTEGER,
            range_first_failing INTEGER,
            version INTEGER NOT NULL DEFAULT 1
        );
        CREATE INDEX alerts_open ON alerts (route, state);

        CREATE TABLE alert_jobs (
            alert_id INTEGER NOT NULL REFERENCES alerts(id),
            job_key TEXT NOT NULL,
            streak INTEGER NOT NULL,
            first_failing_sha TEXT NOT NULL,
            first_failing_pos INTEGER NOT NULL,
            newest_failing_sha TEXT NOT NULL,
            newest_failing_pos INTEGER NOT NULL,
            newest_failing_time TEXT,
            last_green_sha TEXT,
            last_green_pos INTEGER,
            recovered INTEGER NOT NULL DEFAULT 0,
            recovered_sha TEXT,
            joined_at TEXT NOT NULL,
            recovered_at TEXT,
            PRIMARY KEY (alert_id, job_key)
        );
        CREATE INDEX alert_jobs_key ON alert_jobs (job_key, recovered);

        CREATE TABLE alert_events (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            alert_id INTEGER NOT NULL REFERENCES alerts(id),
            kind TEXT NOT NULL,
            actor TEXT,
            at TEXT NOT NULL,
            data TEXT NOT NULL DEFAULT '{}'
        );
        CREATE INDEX alert_events_alert ON alert_events (alert_id, id);
        """
    )


@migrations()
def m003_slack_delivery(db: Database) -> None:
    """The Slack outbox: one parent message per alert, one thread reply per notable event.

    ``slack_parents.rendered_version`` trails ``alerts.version``: the sender edits the
    parent whenever the alert moved on, so many quick changes become one edit.
    ``post_started_at`` marks a post that may have reached Slack without its ``ts``
    being recorded; the sender looks for it before posting again.
    """
    db.executescript(
        """
        CREATE TABLE slack_parents (
            alert_id INTEGER PRIMARY KEY REFERENCES alerts(id),
            channel TEXT NOT NULL,
            ts TEXT,
            rendered_version INTEGER NOT NULL DEFAULT 0,
            post_started_at TEXT,
            posted_at TEXT,
            updated_at TEXT,
            covered_event_id INTEGER NOT NULL DEFAULT 0
        );

        CREATE TABLE slack_replies (
            event_id INTEGER PRIMARY KEY REFERENCES alert_events(id),
            alert_id INTEGER NOT NULL REFERENCES alerts(id),
            state TEXT NOT NULL,
            ts TEXT,
            post_started_at TEXT,
            done_at TEXT
        );
        CREATE INDEX slack_replies_alert ON slack_replies (alert_id, state);

        CREATE TABLE slack_failures (
            target TEXT PRIMARY KEY,
            channel TEXT,
            error TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 1,
            first_at TEXT NOT NULL,
            last_at TEXT NOT NULL,
            retry_at TEXT NOT NULL,
            permanent INTEGER NOT NULL DEFAULT 0
        );

        CREATE TABLE leases (
            name TEXT PRIMARY KEY,
            holder TEXT NOT NULL,
            expires_at TEXT NOT NULL
        );
        """
    )


@migrations()
def m004_external_alerts(db: Database) -> None:
    """Grafana alerts (one row per fingerprint) and the pollers' resumable state.

    ``external_alerts.alert_id`` is the incident a Grafana alert belongs to: the bot's
    own open streak alert for the same team, or a ``kind = 'grafana'`` alert of its own.
    ``poller_state`` holds each poller's cursor, ETags and rate-limit pause, so a
    restart resumes where the last committed tick ended; ``github_runs`` remembers
    which workflow runs' jobs were ingested, so unchanged runs are not fetched again.
    """
    db.executescript(
        """
        CREATE TABLE external_alerts (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            source TEXT NOT NULL DEFAULT 'grafana',
            fingerprint TEXT NOT NULL,
            alert_id INTEGER REFERENCES alerts(id),
            title TEXT NOT NULL DEFAULT '',
            status TEXT NOT NULL,
            team TEXT,
            priority TEXT,
            reason TEXT NOT NULL DEFAULT '',
            values_json TEXT NOT NULL DEFAULT '{}',
            links TEXT NOT NULL DEFAULT '{}',
            starts_at TEXT,
            ends_at TEXT,
            updated_at TEXT NOT NULL,
            last_notification_at TEXT NOT NULL,
            UNIQUE (source, fingerprint)
        );
        CREATE INDEX external_alerts_alert ON external_alerts (alert_id);

        CREATE TABLE poller_state (
            name TEXT PRIMARY KEY,
            cursor TEXT,
            etag_json TEXT NOT NULL DEFAULT '{}',
            paused_until TEXT,
            last_error TEXT,
            updated_at TEXT
        );

        CREATE TABLE github_runs (
            repo TEXT NOT NULL,
            run_id INTEGER NOT NULL,
            workflow TEXT NOT NULL,
            head_sha TEXT NOT NULL,
            version TEXT NOT NULL,
            completed INTEGER NOT NULL DEFAULT 0,
            jobs_etag TEXT,
            created_at TEXT,
            seen_at TEXT NOT NULL,
            PRIMARY KEY (repo, run_id)
        );
        """
    )


@migrations()
def m005_alert_triage(db: Database) -> None:
    """Who acknowledged, owns or snoozed an alert, and where its reminders stand.

    Reminders and escalation are derived from these columns on every tick, never
    from memory: ``reminders_from`` restarts the reminder clock (NULL means
    ``opened_at``), ``reminders_sent`` and ``last_reminder_at`` say how far it got.
    ``processed_interactions`` remembers Slack event ids so retries
    (``X-Slack-Retry-Num``) are answered once; ``digests`` remembers the daily
    digest sent to each channel.
    """
    for column, kind in (
        ("acked_by", "TEXT"), ("acked_at", "TEXT"),
        ("assignee", "TEXT"), ("assigned_by", "TEXT"), ("assigned_at", "TEXT"),
        ("snoozed_until", "TEXT"), ("snooze_kind", "TEXT"), ("snooze_sha", "TEXT"),
        ("snoozed_by", "TEXT"),
        ("reminders_from", "TEXT"), ("reminders_sent", "INTEGER NOT NULL DEFAULT 0"),
        ("last_reminder_at", "TEXT"),
        ("escalated", "INTEGER NOT NULL DEFAULT 0"), ("escalated_at", "TEXT"),
        ("bisect_status", "TEXT"),
    ):
        db.execute(f"ALTER TABLE alerts ADD COLUMN {column} {kind}")
    db.executescript(
        """
        CREATE TABLE processed_interactions (
            key TEXT PRIMARY KEY,
            at TEXT NOT NULL
        );

        CREATE TABLE digests (
            channel TEXT NOT NULL,
            day TEXT NOT NULL,
            sent_at TEXT NOT NULL,
            PRIMARY KEY (channel, day)
        );
        """
    )


@migrations()
def m006_bisects(db: Database) -> None:
    """Bisects started from alerts, and every probe (one run of the job at one commit).

    A probe row is written, and committed as ``dispatching``, before its workflow is
    dispatched: a dispatch is not idempotent, so after a crash or a 5xx the bot looks
    for the run it may have started instead of dispatching again. ``source = 'ci'``
    rows are results CI already had when the bisect started (free probes, no run).
    The partial unique index lets the database refuse a second running bisect per
    alert, whichever of two racing clicks commits first.
    """
    db.executescript(
        """
        CREATE TABLE bisects (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            alert_id INTEGER NOT NULL REFERENCES alerts(id),
            route TEXT NOT NULL,
            repo TEXT NOT NULL,
            branch TEXT NOT NULL,
            job_key TEXT NOT NULL,
            backend TEXT NOT NULL,
            k INTEGER NOT NULL,
            state TEXT NOT NULL DEFAULT 'running',
            last_good TEXT NOT NULL,
            suspects_json TEXT NOT NULL,
            limits_json TEXT NOT NULL DEFAULT '{}',
            started_by TEXT,
            started_at TEXT NOT NULL,
            finished_at TEXT,
            culprit TEXT,
            reason TEXT,
            round INTEGER NOT NULL DEFAULT 0,
            reported_round INTEGER NOT NULL DEFAULT 0
        );
        CREATE UNIQUE INDEX bisects_one_running ON bisects (alert_id) WHERE state = 'running';
        CREATE INDEX bisects_state ON bisects (state, route);

        CREATE TABLE bisect_probes (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            bisect_id INTEGER NOT NULL REFERENCES bisects(id),
            sha TEXT NOT NULL,
            round INTEGER NOT NULL,
            source TEXT NOT NULL DEFAULT 'run',
            attempt INTEGER NOT NULL DEFAULT 0,
            state TEXT NOT NULL DEFAULT 'planned',
            outcome TEXT,
            run_id INTEGER,
            run_url TEXT,
            dispatched_at TEXT,
            attempted_at TEXT,
            lookups INTEGER NOT NULL DEFAULT 0,
            correlation_id TEXT UNIQUE,
            detail TEXT,
            finished_at TEXT
        );
        CREATE INDEX bisect_probes_bisect ON bisect_probes (bisect_id, round);
        CREATE INDEX bisect_probes_run ON bisect_probes (run_id);
        """
    )


@migrations()
def m007_console_messages(db: Database) -> None:
    """Mark parents shown only in console mode (no ``SLACK_BOT_TOKEN``).

    Their channel and ts exist nowhere in Slack: once a real token is configured the
    sender posts such alerts afresh instead of editing a message that was never sent.
    """
    db.execute("ALTER TABLE slack_parents ADD COLUMN console INTEGER NOT NULL DEFAULT 0")


@migrations()
def m008_slack_sweeps(db: Database) -> None:
    """Posts whose fate was in doubt when they were sent again, watched for a late twin.

    ``chat.postMessage`` has no idempotency key: a post that timed out may land after
    the bot, finding nothing, posted again. Until ``until`` the sender re-reads the
    channel (or thread) from ``since`` every so often and deletes any copy carrying the
    same metadata other than the one it recorded.
    """
    db.executescript(
        """
        CREATE TABLE slack_sweeps (
            target TEXT PRIMARY KEY,
            alert_id INTEGER NOT NULL,
            event_id INTEGER,
            channel TEXT NOT NULL,
            since TEXT NOT NULL,
            next_at TEXT NOT NULL,
            until TEXT NOT NULL
        );
        CREATE INDEX slack_sweeps_due ON slack_sweeps (next_at);
        """
    )


@migrations()
def m009_trunk_chain(db: Database) -> None:
    """Trunk order from the push chain: each commit's parent, and commits waiting to be placed.

    A push names its parent (``before``); when that parent is not placed yet (GitHub
    redelivers pushes in any order) its commits wait in ``waiting_commits`` until a
    neighbour is placed, instead of being appended at the head by arrival.
    """
    db.executescript(
        """
        ALTER TABLE commits ADD COLUMN parent TEXT;
        CREATE INDEX commits_parent ON commits (repo, branch, parent);

        CREATE TABLE waiting_commits (
            repo TEXT NOT NULL,
            branch TEXT NOT NULL,
            sha TEXT NOT NULL,
            parent TEXT,
            title TEXT NOT NULL DEFAULT '',
            author TEXT NOT NULL DEFAULT '',
            pr_number INTEGER,
            time TEXT,
            url TEXT,
            recorded_at TEXT NOT NULL,
            PRIMARY KEY (repo, branch, sha)
        );
        """
    )


@migrations()
def m010_failure_evidence(db: Database) -> None:
    """Evidence at alert time, kept apart from ``job_results``: what each failed job's log
    said, the files each commit touched, and the reruns people (or the bot) asked for.

    ``job_evidence``: one row per failed job attempt; ``state`` ``wanted`` queues its log
    for the background reader (``next_try_at`` spaces retries), ``done`` holds the key
    lines, class and signature, ``gone`` says the log expired. ``commit_files``: the
    paths a commit touched, from its push or the commits API (``wanted`` queues a look-up
    for a suspect that has none). ``job_retries``: one row per job of a commit that was
    rerun, so each is rerun at most once, with who asked; the unique key arbitrates two
    clicks that race.
    """
    db.executescript(
        """
        CREATE TABLE job_evidence (
            repo TEXT NOT NULL,
            job_id INTEGER NOT NULL,
            sha TEXT NOT NULL,
            job_key TEXT NOT NULL,
            job_name TEXT NOT NULL,
            conclusion TEXT,
            state TEXT NOT NULL,
            source TEXT,
            class TEXT,
            class_rule TEXT,
            class_line TEXT,
            class_hints TEXT NOT NULL DEFAULT '[]',
            signature TEXT,
            lines_json TEXT NOT NULL DEFAULT '[]',
            tests_json TEXT NOT NULL DEFAULT '[]',
            test_count INTEGER NOT NULL DEFAULT 0,
            modules_json TEXT NOT NULL DEFAULT '[]',
            attempts INTEGER NOT NULL DEFAULT 0,
            next_try_at TEXT,
            last_error TEXT,
            bytes_read INTEGER,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            PRIMARY KEY (repo, job_id)
        );
        CREATE INDEX job_evidence_queue ON job_evidence (state, next_try_at);
        CREATE INDEX job_evidence_cell ON job_evidence (repo, job_key, sha);

        CREATE TABLE commit_files (
            repo TEXT NOT NULL,
            sha TEXT NOT NULL,
            state TEXT NOT NULL,
            files_json TEXT NOT NULL DEFAULT '[]',
            truncated INTEGER NOT NULL DEFAULT 0,
            message TEXT,
            source TEXT,
            attempts INTEGER NOT NULL DEFAULT 0,
            next_try_at TEXT,
            last_error TEXT,
            recorded_at TEXT NOT NULL,
            PRIMARY KEY (repo, sha)
        );
        CREATE INDEX commit_files_queue ON commit_files (state, next_try_at);

        CREATE TABLE job_retries (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            alert_id INTEGER NOT NULL REFERENCES alerts(id),
            repo TEXT NOT NULL,
            sha TEXT NOT NULL,
            workflow TEXT NOT NULL,
            job_name TEXT NOT NULL,
            job_key TEXT NOT NULL,
            job_id INTEGER NOT NULL,
            run_id INTEGER,
            attempt INTEGER NOT NULL DEFAULT 1,
            requested_by TEXT NOT NULL,
            requested_at TEXT NOT NULL,
            state TEXT NOT NULL DEFAULT 'planned',
            outcome TEXT,
            result_job_id INTEGER,
            detail TEXT,
            tries INTEGER NOT NULL DEFAULT 0,
            next_try_at TEXT,
            started_at TEXT,
            finished_at TEXT,
            UNIQUE (repo, sha, workflow, job_name)
        );
        CREATE INDEX job_retries_state ON job_retries (state, next_try_at);
        CREATE INDEX job_retries_alert ON job_retries (alert_id);
        """
    )


@migrations()
def m011_outbox_pending(db: Database) -> None:
    """What the Slack outbox still owes, kept apart so finding it costs O(pending work).

    ``outbox_parents`` holds alerts whose parent message is missing or shows an older
    version; ``outbox_events`` holds timeline events whose thread reply is not settled.
    Triggers add rows wherever alerts, events and parents change, so no writer can
    forget; the sender removes a row when Slack has what it stands for. Without them
    every pass read every event of every alert ever opened.
    """
    db.executescript(
        """
        CREATE TABLE outbox_parents (alert_id INTEGER PRIMARY KEY);
        CREATE TABLE outbox_events (
            event_id INTEGER PRIMARY KEY,
            alert_id INTEGER NOT NULL
        );
        CREATE INDEX outbox_events_alert ON outbox_events (alert_id, event_id);

        CREATE TRIGGER outbox_alert_opened AFTER INSERT ON alerts BEGIN
            INSERT OR IGNORE INTO outbox_parents (alert_id) VALUES (new.id);
        END;
        CREATE TRIGGER outbox_alert_changed AFTER UPDATE OF version ON alerts
        WHEN new.version IS NOT old.version BEGIN
            INSERT OR IGNORE INTO outbox_parents (alert_id) VALUES (new.id);
        END;
        CREATE TRIGGER outbox_parent_lost AFTER UPDATE OF ts ON slack_parents
        WHEN new.ts IS NULL BEGIN
            INSERT OR IGNORE INTO outbox_parents (alert_id) VALUES (new.alert_id);
        END;
        CREATE TRIGGER outbox_parent_dropped AFTER DELETE ON slack_parents BEGIN
            INSERT OR IGNORE INTO outbox_parents (alert_id) VALUES (old.alert_id);
        END;
        CREATE TRIGGER outbox_event_added AFTER INSERT ON alert_events BEGIN
            INSERT OR IGNORE INTO outbox_events (event_id, alert_id)
            VALUES (new.id, new.alert_id);
        END;

        INSERT INTO outbox_parents (alert_id)
            SELECT a.id FROM alerts a LEFT JOIN slack_parents p ON p.alert_id = a.id
            WHERE p.ts IS NULL OR p.rendered_version < a.version;
        INSERT INTO outbox_events (event_id, alert_id)
            SELECT e.id, e.alert_id FROM alert_events e
            LEFT JOIN slack_replies r ON r.event_id = e.id
            WHERE r.event_id IS NULL OR r.state = 'pending';
        """
    )


@migrations(transactional=False)
def m012_incremental_vacuum(db: Database) -> None:
    """Let retention give freed pages back to the file system (``PRAGMA incremental_vacuum``).

    ``auto_vacuum`` only changes with a full ``VACUUM``, which cannot run in a transaction
    and rewrites the file once: on a database that grew for a long time this migration
    takes a while (about a minute per GB), once.
    """
    # retention deletes old ledger rows by age
    db.execute("CREATE INDEX IF NOT EXISTS deliveries_received ON deliveries (received_at)")
    if db.execute("PRAGMA auto_vacuum").fetchone()[0] != 2:
        db.execute("PRAGMA auto_vacuum = INCREMENTAL")
        db.execute("VACUUM")


@migrations()
def m013_bisect_ranking(db: Database) -> None:
    """The suspects a bisect favours, most likely first (``EVIDENCE.md`` section 5), kept
    with the bisect so every tick (and a restart) plans from the same ranking."""
    db.execute("ALTER TABLE bisects ADD COLUMN ranked_json TEXT NOT NULL DEFAULT '[]'")


@migrations()
def m014_flaky_cells_index(db: Database) -> None:
    """The newest flaky cells of a job, found without walking every cell of its history.

    Flaky cells are rare (a fraction of a percent); the alert view reads a job's newest
    ones, which walked the whole ``cells_walk`` range back until it found enough.
    """
    db.execute("CREATE INDEX cells_flaky ON cells (repo, branch, job_key, position) "
               "WHERE status = 'flaky'")


@migrations()
def m015_alert_episodes(db: Database) -> None:
    """Alert members as episodes: where each reached the threshold, where it ended.

    The engine regroups members in trunk order of ``reached_pos`` (the failure that made
    the streak long enough to alert) from the earliest position a batch of facts changed,
    so the alerts are the same whatever order the facts arrived in. ``recovered_pos`` is
    the pass that ended the member; ``withdrawn`` marks a member whose failures late
    results showed were no streak after all. Existing members get the best values known:
    their first failing commit as ``reached_pos`` and the position of ``recovered_sha``.
    """
    for column, kind in (("route", "TEXT"), ("reached_pos", "INTEGER"),
                         ("recovered_pos", "INTEGER"),
                         ("withdrawn", "INTEGER NOT NULL DEFAULT 0")):
        db.execute(f"ALTER TABLE alert_jobs ADD COLUMN {column} {kind}")
    db.execute("UPDATE alert_jobs SET route = (SELECT route FROM alerts "
               "WHERE alerts.id = alert_jobs.alert_id), reached_pos = first_failing_pos")
    db.execute(
        "UPDATE alert_jobs SET recovered_pos = (SELECT c.position FROM commits c "
        "JOIN alerts a ON a.repo = c.repo AND a.branch = c.branch "
        "WHERE a.id = alert_jobs.alert_id AND c.sha = alert_jobs.recovered_sha) "
        "WHERE recovered = 1")
    db.execute("CREATE INDEX alert_jobs_route ON alert_jobs (route, reached_pos)")


@migrations()
def m016_evidence_by_commit(db: Database) -> None:
    """Failure evidence found by commit, without reading every row of the repository.

    The alert view reads the infrastructure failures at its jobs' newest failing commits
    (the route's other jobs that made no streak), and retention deletes the evidence of
    commits behind its cut; both looked commits up in ``job_evidence`` by ``(repo, sha)``,
    which no index served, so both grew with every failed job ever stored.
    """
    db.execute("CREATE INDEX job_evidence_commit ON job_evidence (repo, sha)")


@migrations()
def m017_auto_retries(db: Database) -> None:
    """Automatic retries of a job's first failure (``bot/domain/auto_retry.py``) in
    ``job_retries``, beside the ones people ask for.

    Such a retry happens before any alert exists, so ``alert_id`` may be NULL (an alert
    that later shows the job finds it by job and commit); ``route`` names the route whose
    budget paid for it. SQLite cannot drop a NOT NULL constraint, so the table is rebuilt
    with its rows, ids and unique key kept.
    """
    db.executescript(
        """
        CREATE TABLE job_retries_new (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            alert_id INTEGER REFERENCES alerts(id),
            repo TEXT NOT NULL,
            sha TEXT NOT NULL,
            workflow TEXT NOT NULL,
            job_name TEXT NOT NULL,
            job_key TEXT NOT NULL,
            job_id INTEGER NOT NULL,
            run_id INTEGER,
            attempt INTEGER NOT NULL DEFAULT 1,
            requested_by TEXT NOT NULL,
            requested_at TEXT NOT NULL,
            state TEXT NOT NULL DEFAULT 'planned',
            outcome TEXT,
            result_job_id INTEGER,
            detail TEXT,
            tries INTEGER NOT NULL DEFAULT 0,
            next_try_at TEXT,
            started_at TEXT,
            finished_at TEXT,
            route TEXT,
            UNIQUE (repo, sha, workflow, job_name)
        );
        INSERT INTO job_retries_new (id, alert_id, repo, sha, workflow, job_name, job_key,
            job_id, run_id, attempt, requested_by, requested_at, state, outcome,
            result_job_id, detail, tries, next_try_at, started_at, finished_at)
            SELECT id, alert_id, repo, sha, workflow, job_name, job_key, job_id, run_id,
            attempt, requested_by, requested_at, state, outcome, result_job_id, detail, tries,
            next_try_at, started_at, finished_at FROM job_retries;
        DROP TABLE job_retries;
        ALTER TABLE job_retries_new RENAME TO job_retries;
        CREATE INDEX job_retries_state ON job_retries (state, next_try_at);
        CREATE INDEX job_retries_alert ON job_retries (alert_id);
        CREATE INDEX job_retries_key ON job_retries (repo, job_key, sha);
        CREATE INDEX job_retries_budget ON job_retries (route, requested_at)
            WHERE route IS NOT NULL;
        CREATE INDEX job_evidence_created ON job_evidence (created_at);
        """
    )


@migrations()
def m018_lean_results(db: Database) -> None:
    """Raw results in a leaner table: strings and commit shas interned, times as integers.

    ``results`` keeps what the rules, the alert and the evidence need: the run and attempt,
    status and conclusion, when it completed, its page and log links and its failure
    lines. Job ids are the row ids (GitHub's are unique across repositories; HUD's
    synthetic ones hash the commit and job name). Repositories, workflows, job names,
    job keys, refs, statuses, conclusions and sources are ids into ``ci_strings``; shas
    are ids into ``ci_shas``. A job page link in one of GitHub's two derivable forms is
    stored as a marker ('' for ``/actions/runs/{run}/job/{job}``, '^' for ``/runs/{job}``).
    One index, ``(sha, job_key)``, serves both lookups: the runs of one job at one commit,
    and the jobs that ran at a commit once it is placed. ``job_results`` becomes a view
    with the old columns, for readers outside the hot path. Existing rows are moved over
    (fractions of a second dropped; ``started_at`` and ``received_at`` are not kept: no
    rule read them).
    """
    db.executescript(
        """
        CREATE TABLE ci_strings (id INTEGER PRIMARY KEY, text TEXT NOT NULL UNIQUE);
        CREATE TABLE ci_shas (id INTEGER PRIMARY KEY, sha TEXT NOT NULL UNIQUE);
        CREATE TABLE results (
            job_id INTEGER PRIMARY KEY,
            repo INTEGER NOT NULL,
            sha INTEGER NOT NULL,
            job_key INTEGER NOT NULL,
            workflow INTEGER NOT NULL,
            job_name INTEGER NOT NULL,
            ref INTEGER,
            run_id INTEGER,
            attempt INTEGER NOT NULL,
            status INTEGER NOT NULL,
            conclusion INTEGER,
            completed INTEGER,
            html_url TEXT,
            log_url TEXT,
            failure_lines TEXT,
            source INTEGER NOT NULL
        );

        INSERT OR IGNORE INTO ci_strings (text)
            SELECT repo FROM job_results UNION SELECT job_key FROM job_results
            UNION SELECT workflow FROM job_results UNION SELECT job_name FROM job_results
            UNION SELECT branch FROM job_results WHERE branch IS NOT NULL
            UNION SELECT status FROM job_results
            UNION SELECT conclusion FROM job_results WHERE conclusion IS NOT NULL
            UNION SELECT source FROM job_results;
        INSERT OR IGNORE INTO ci_shas (sha) SELECT DISTINCT sha FROM job_results;
        INSERT OR REPLACE INTO results
            SELECT j.job_id, rp.id, s.id, k.id, wf.id, jn.id, rf.id, j.run_id, j.attempt, st.id,
                   cc.id, CAST(strftime('%s', j.completed_at) AS INTEGER),
                   CASE j.html_url
                       WHEN 'https://github.com/' || j.repo || '/actions/runs/' || j.run_id
                            || '/job/' || j.job_id THEN ''
                       WHEN 'https://github.com/' || j.repo || '/runs/' || j.job_id THEN '^'
                       ELSE j.html_url END,
                   j.log_url, nullif(j.failure_lines, '[]'), so.id
            FROM job_results j
            JOIN ci_strings rp ON rp.text = j.repo JOIN ci_shas s ON s.sha = j.sha
            JOIN ci_strings k ON k.text = j.job_key JOIN ci_strings wf ON wf.text = j.workflow
            JOIN ci_strings jn ON jn.text = j.job_name JOIN ci_strings st ON st.text = j.status
            JOIN ci_strings so ON so.text = j.source
            LEFT JOIN ci_strings rf ON rf.text = j.branch
            LEFT JOIN ci_strings cc ON cc.text = j.conclusion;
        DROP TABLE job_results;

        CREATE INDEX results_commit ON results (sha, job_key);

        CREATE VIEW job_results AS SELECT
            rp.text AS repo, r.job_id AS job_id, s.sha AS sha, rf.text AS branch,
            wf.text AS workflow, jn.text AS job_name, k.text AS job_key, r.run_id AS run_id,
            r.attempt AS attempt, st.text AS status, cc.text AS conclusion,
            CASE r.html_url
                WHEN '' THEN 'https://github.com/' || rp.text || '/actions/runs/' || r.run_id
                             || '/job/' || r.job_id
                WHEN '^' THEN 'https://github.com/' || rp.text || '/runs/' || r.job_id
                ELSE r.html_url END AS html_url,
            r.log_url AS log_url, NULL AS started_at,
            strftime('%Y-%m-%dT%H:%M:%S+00:00', r.completed, 'unixepoch') AS completed_at,
            coalesce(r.failure_lines, '[]') AS failure_lines, so.text AS source,
            NULL AS received_at
        FROM results r
        JOIN ci_strings rp ON rp.id = r.repo JOIN ci_shas s ON s.id = r.sha
        JOIN ci_strings k ON k.id = r.job_key JOIN ci_strings wf ON wf.id = r.workflow
        JOIN ci_strings jn ON jn.id = r.job_name JOIN ci_strings st ON st.id = r.status
        JOIN ci_strings so ON so.id = r.source
        LEFT JOIN ci_strings rf ON rf.id = r.ref
        LEFT JOIN ci_strings cc ON cc.id = r.conclusion;
        """
    )


@migrations()
def m019_cells_by_position(db: Database) -> None:
    """Cells clustered by their walk order: one B-tree, no second index.

    Every read of cells walks a job's positions (the streak walk, the stretch late facts
    can change, retention's cut); looking a cell up by commit goes through its position,
    which the commit gives. So the table is keyed by ``(repo, branch, job_key,
    position)`` and stored ``WITHOUT ROWID``: the ``(..., sha)`` key and the
    ``cells_walk`` index it replaces cost more bytes than the rows themselves. Rows are
    copied over as they are; the partial index of flaky cells is made again.
    """
    db.executescript(
        """
        CREATE TABLE cells_by_position (
            repo TEXT NOT NULL,
            branch TEXT NOT NULL,
            job_key TEXT NOT NULL,
            sha TEXT NOT NULL,
            position INTEGER NOT NULL,
            status TEXT NOT NULL,
            time TEXT,
            PRIMARY KEY (repo, branch, job_key, position)
        ) WITHOUT ROWID;
        INSERT OR REPLACE INTO cells_by_position
            SELECT repo, branch, job_key, sha, position, status, time FROM cells;
        DROP TABLE cells;
        ALTER TABLE cells_by_position RENAME TO cells;
        CREATE INDEX cells_flaky ON cells (repo, branch, job_key, position)
            WHERE status = 'flaky';
        """
    )


@migrations()
def m020_lean_cells(db: Database) -> None:
    """Cells keyed by interned ids: ``cell_rows``, with ``cells`` a view of it as text.

    A cell's key repeated its repository, branch and job name as text (about 90 bytes of
    a 170-byte row); every batch writes one cell per job at the newest commit, each into
    a different leaf of the table, so smaller rows are fewer and cheaper pages to write.
    The writers (recomputing cells, renumbering trunk order, retention) use
    ``cell_rows``; readers keep reading ``cells``, which joins the names back (SQLite
    looks the names up first, then walks ``cell_rows`` by its key). Names and shas not yet
    interned are interned; rows are copied as they are.
    """
    db.executescript(
        """
        INSERT OR IGNORE INTO ci_strings (text)
            SELECT repo FROM cells UNION SELECT branch FROM cells
            UNION SELECT job_key FROM cells;
        INSERT OR IGNORE INTO ci_shas (sha) SELECT DISTINCT sha FROM cells;
        CREATE TABLE cell_rows (
            repo INTEGER NOT NULL,
            branch INTEGER NOT NULL,
            job_key INTEGER NOT NULL,
            position INTEGER NOT NULL,
            sha INTEGER NOT NULL,
            status TEXT NOT NULL,
            time TEXT,
            PRIMARY KEY (repo, branch, job_key, position)
        ) WITHOUT ROWID;
        INSERT INTO cell_rows
            SELECT rp.id, br.id, k.id, c.position, s.id, c.status, c.time FROM cells c
            JOIN ci_strings rp ON rp.text = c.repo JOIN ci_strings br ON br.text = c.branch
            JOIN ci_strings k ON k.text = c.job_key JOIN ci_shas s ON s.sha = c.sha;
        DROP TABLE cells;
        CREATE INDEX cell_rows_flaky ON cell_rows (repo, branch, job_key, position)
            WHERE status = 'flaky';
        CREATE VIEW cells AS SELECT
            rp.text AS repo, br.text AS branch, k.text AS job_key, s.sha AS sha,
            c.position AS position, c.status AS status, c.time AS time
        FROM cell_rows c
        JOIN ci_strings rp ON rp.id = c.repo JOIN ci_strings br ON br.id = c.branch
        JOIN ci_strings k ON k.id = c.job_key JOIN ci_shas s ON s.id = c.sha;
        """
    )
