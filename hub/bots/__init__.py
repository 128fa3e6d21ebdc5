"""Bots as actors: the runner that gives each customer message of a bot's conversation to its bot, and the
kinds of bot it speaks to (a signed webhook, a Rasa REST channel, a rules flow)."""
