"""`flux-lora-bot run | check-config | generate | backup | migrate-db`: the admin's entry
points.

Every failure ends in one clear line and an exit code (1: the work failed, 2: the config or
the command line is wrong), never in a traceback. Secrets come from the environment, or from an
env file (`.env`, or `$FLUX_BOT_ENV_FILE`), never from the command line.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from bot import __version__
from bot.cli_generate import add_arguments, cmd_generate
from bot.config import ENV_PATH, Config, ConfigError, default_path, load_config, masked_url
from bot.envfile import environment
from bot.i18n import set_default_locale, t
from bot.logs import setup_logging
from bot.online import check_online

PG_ENV = ("PGPASSWORD", "PGPASSFILE", "PGSSLMODE", "PGSSLROOTCERT")  # from .env as well


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flux-lora-bot",
        description="A Discord bot for Flux images with a LoRA, through Replicate. Tokens come "
                    "from $DISCORD_TOKEN and $REPLICATE_API_TOKEN, or from a .env file.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def config_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument("--config", metavar="PATH",
                       help="config file (default: $FLUX_BOT_CONFIG, else config.toml if "
                            "there is one, else the defaults)")

    run = sub.add_parser("run", help="run the bot")
    config_arg(run)
    run.add_argument("--sync-commands", action="store_true",
                     help="register the slash commands with Discord at start (the first time,"
                          " and after an upgrade that changes them)")

    check = sub.add_parser("check-config", help="validate the config and print it, secrets masked")
    config_arg(check)
    check.add_argument("--online", action="store_true",
                       help="also check both tokens, and the model version, with the services")

    backup = sub.add_parser("backup", help="copy the database safely, even while the bot runs")
    backup.add_argument("dest", metavar="DEST", help="the new file (readable by you only)")
    config_arg(backup)

    move = sub.add_parser(
        "migrate-db", help="copy the SQLite database into an empty PostgreSQL database",
        description="Copy everything (history, ledger, jobs in flight, bans, settings, LoRAs, "
                    "audit log) from the SQLite file into an empty PostgreSQL database, then "
                    "compare the row counts and the ledger sums. Stop the bot first.")
    move.add_argument("--to", metavar="URL",
                      help="postgresql://user@host/db (default: $DATABASE_URL); leave the "
                           "password out and give it in $PGPASSWORD or ~/.pgpass")
    move.add_argument("--from", dest="source", metavar="PATH",
                      help="the SQLite file (default: storage.database of the config)")
    config_arg(move)

    gen = sub.add_parser("generate", help="one generation through Replicate, no Discord")
    add_arguments(gen)
    config_arg(gen)
    return parser


def load(path: str | None, *, announce: bool = False, ignore: tuple[str, ...] = ()) -> Config:
    """The config: a path given (`--config` or `$FLUX_BOT_CONFIG`) must exist; without one,
    `config.toml` is read when there is one, else the defaults apply (said, with `announce`).
    Variables in `ignore` are left out of the environment."""
    env = {k: v for k, v in environment().items() if k not in ignore}
    for name in PG_ENV:  # asyncpg reads these from the process environment only
        if env.get(name) and name not in os.environ:
            os.environ[name] = env[name]
    explicit = path is not None or bool(env.get(ENV_PATH))
    if announce and not explicit and not Path(default_path(env)).exists():
        print(t("cli.config_missing", None, path=default_path(env)), file=sys.stderr)
    config = load_config(path, env, missing_ok=not explicit)
    set_default_locale(config.discord.default_locale)
    return config


def cmd_check_config(args: argparse.Namespace, config: Config) -> int:
    config.require("discord.token", "replicate.api_token")
    sys.stdout.write(config.masked_toml())
    if args.online:
        problems = asyncio.run(check_online(config, sys.stderr))
        if problems:
            for line in problems:
                print(line, file=sys.stderr)
            return 2
    print(t("cli.config_valid"), file=sys.stderr)
    return 0


def cmd_run(args: argparse.Namespace, config: Config) -> int:
    config.require("discord.token", "replicate.api_token")
    pg_password = os.environ.get("PGPASSWORD", "")  # asyncpg reads it: never logged either
    setup_logging(config.logging.level, config.logging.format,
                  [*config.secrets(), *([pg_password] if pg_password else [])])
    from bot.serve import run_bot

    return run_bot(config, sync_commands=args.sync_commands or config.discord.sync_commands)


def cmd_backup(args: argparse.Namespace, config: Config) -> int:
    from bot.storage.backup import backup
    from bot.storage.database import is_postgres

    if is_postgres(config.storage.database):  # its own tools do it better than we could
        print(t("cli.backup_postgres", None), file=sys.stderr)
        return 1

    try:
        pages = backup(config.storage.database, args.dest)
    except FileExistsError:
        print(t("cli.error", None, message=f"{args.dest} exists already; not overwritten"),
              file=sys.stderr)
        return 1
    except (OSError, ValueError) as exc:
        print(t("cli.error", None, message=f"storage.database / {args.dest}: {exc}"),
              file=sys.stderr)
        return 1
    print(t("cli.backed_up", None, path=args.dest, pages=pages), file=sys.stderr)
    return 0


def cmd_migrate_db(args: argparse.Namespace, config: Config) -> int:
    import asyncpg

    from bot.errors import StartupError
    from bot.storage.database import is_postgres
    from bot.storage.transfer import TransferError, transfer

    target = args.to or environment().get("DATABASE_URL", "")
    # the file the bot used so far, even when $DATABASE_URL already names the new database
    source = args.source or load(args.config, ignore=("DATABASE_URL",)).storage.database
    if not is_postgres(target):
        message = "--to: give a postgresql:// URL (or set $DATABASE_URL)"
    elif is_postgres(source):
        message = "storage.database is PostgreSQL already; give the SQLite file with --from"
    else:
        try:
            moved = asyncio.run(transfer(source, target))
        except TransferError as exc:
            message = f"{masked_url(target)}: {exc}"
        except StartupError as exc:  # either database cannot be opened: names which
            message = str(exc)
        except (OSError, ValueError, asyncpg.PostgresError) as exc:  # a value PostgreSQL refused
            message = f"{source} -> {masked_url(target)}: {type(exc).__name__}: {exc}"
        else:
            credits = sum(r[2] for r in moved.ledger if r[1] != "usd")  # the credit rows
            print(t("cli.migrated", None, url=masked_url(target), rows=sum(moved.counts.values()),
                    ledger=credits), file=sys.stderr)
            print(t("cli.migrated_next", None), file=sys.stderr)
            return 0
    print(t("cli.error", None, message=message), file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    commands = {"run": cmd_run, "check-config": cmd_check_config, "generate": cmd_generate,
                "backup": cmd_backup, "migrate-db": cmd_migrate_db}
    if args.command not in commands:
        parser.print_help(sys.stderr)
        return 2
    try:
        config = load(args.config, announce=args.command == "run")
        return commands[args.command](args, config)
    except ConfigError as exc:  # one line per bad key, exit 2, whatever the command
        for line in exc.lines:
            print(line, file=sys.stderr)
        return 2


__all__ = ["default_path", "main"]
