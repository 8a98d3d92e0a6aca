"""Discord features, one cog per module, loaded by `bot.discord_bot.FluxBot.setup_hook`."""
