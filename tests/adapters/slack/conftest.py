from tests.adapters.slack.slack_fixtures import fake

__all__ = ["fake"]
