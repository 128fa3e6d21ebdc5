"""channelhub: Messenger, WhatsApp and Viber in one contact-centre desk."""

__version__ = "0.1.0"
