"""mailer: the email campaign and newsletter engine of the Ontwikkelagenda Veiligheid Voorop."""

__version__ = "0.1.0"
