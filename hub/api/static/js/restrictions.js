// What each channel allows, in the words of the hub's refusal codes (hub/policy.py `Rule`): the
// "Send message window" and the conversation's window badge explain a block with the text for its
// code, so what the agent reads is what the hub decided. tests/unit/test_console_wording.py keeps
// RULE_TEXT in line with the codes.

import { pick, dateTime, parseTime } from "./util.js";

export const RULE_TEXT = {
  no_previous_contact: "This customer never wrote to this channel account: we never write first.",
  window_closed: {
    messenger: "The 24-hour standard messaging window is closed: free text goes only with a message tag (HUMAN_AGENT up to 7 days after the customer's last message).",
    whatsapp: "The 24-hour customer-service window is closed: only an approved WhatsApp template can be sent until the customer writes again.",
    default: "The messaging window is closed.",
  },
  template_binding_required: "The 24-hour window is closed and this template has no approved WhatsApp template for the provider, so it cannot be sent.",
  tag_retired: "That message tag was retired by Meta and is refused.",
  tag_expired: "That message tag's own limit after the customer's last message has passed.",
  tag_unknown: "That is not a Messenger message tag.",
  tag_not_supported: "Message tags exist only on Messenger.",
  tag_human_only: "The HUMAN_AGENT tag is for a person's reply only: an automated message outside the 24-hour window needs another tag that applies.",
  tag_template_only: "The CUSTOMER_FEEDBACK tag may only carry Meta's Customer Feedback survey form, which the hub does not send: outside the 24-hour window use another tag that applies.",
  not_subscribed: "This Viber user unsubscribed from the bot: they can be messaged again once they write to it.",
  welcome_only: "This Viber user only opened the chat and did not subscribe: wait until they write.",
  text_too_long: "The text is longer than the channel takes in one message.",
  attachment_not_supported: "The channel does not take this kind of attachment.",
  attachment_too_large: "The file is larger than the channel takes for its kind (see the channel's limits below).",
  attachment_type_not_allowed: "The channel does not take this file type for its kind.",
  too_many_attachments: "One file per message on every channel: send several files as several messages.",
  caption_not_allowed: "The channel takes no text with this kind of file (WhatsApp audio and stickers, documents through Twilio): the console sends the text as a message of its own.",
  empty_message: "The message has no text, attachment or template.",
};

// each channel's restrictions, as the manual's Send message window lists them
export const CHANNEL_RESTRICTIONS = {
  messenger: [
    "Only customers who wrote to this Page can be messaged (no_previous_contact).",
    "Free text within 24 hours of the customer's last message: the standard messaging window (window_closed).",
    "After that, only with a message tag: HUMAN_AGENT up to 7 days (tag_expired); ACCOUNT_UPDATE, CONFIRMED_EVENT_UPDATE, POST_PURCHASE_UPDATE without a limit; retired tags are refused (tag_retired); HUMAN_AGENT never for a bot's message (tag_human_only); CUSTOMER_FEEDBACK only on Meta's Customer Feedback survey form, which the hub does not send (tag_template_only).",
    "Files: images up to 8 MB, video, audio and other files up to 25 MB, one per message (attachment_too_large, too_many_attachments).",
  ],
  whatsapp: [
    "Only customers who wrote to this number can be messaged (no_previous_contact).",
    "Free text within 24 hours of the customer's last message: the customer-service window (window_closed).",
    "After that, only an approved WhatsApp template (template_binding_required).",
    "Files: images up to 5 MB (JPEG, PNG), audio and video up to 16 MB, documents up to 100 MB (16 MB through Twilio, and only PDF, Word, PowerPoint PPTX or Excel XLSX); no caption on audio or stickers, nor on documents through Twilio (attachment_too_large, attachment_type_not_allowed, caption_not_allowed).",
  ],
  viber: [
    "Only users subscribed to the bot, or who wrote to it, can be messaged (not_subscribed, welcome_only).",
    "Outside the 24-hour session a message is chatbot-initiated and billable.",
    "Files: images up to 1 MB (JPEG, PNG, GIF), video up to 26 MB (MP4), other files up to 50 MB; a voice note goes as a file (attachment_too_large, attachment_type_not_allowed).",
  ],
};

export function ruleText(rule, channel) {
  const text = RULE_TEXT[rule];
  if (!text) return rule ? String(rule).replace(/_/g, " ") : "";
  return typeof text === "string" ? text : text[channel] || text.default;
}

// What the window allows now, from the hub's eligibility answer: free text, a tag, templates only, or nothing.
export function describeWindow(e) {
  if (!e) return { mode: "unknown", text: "Window unknown" };
  const free = e.free_text && typeof e.free_text === "object" ? e.free_text : null;
  const freeUntil = pick(free || {}, "until", "expires_at") || pick(e, "free_text_until", "window_until", "until");
  const freeAllowed = free ? free.allowed !== false && (free.allowed === true || Boolean(freeUntil)) : e.free_text === true || Boolean(pick(e, "free_text_allowed")) || Boolean(freeUntil && parseTime(freeUntil) > new Date());
  if (freeAllowed) return { mode: "free", text: freeUntil ? `Free text until ${dateTime(freeUntil)}` : "Free text allowed" };
  const tags = (e.tags || []).filter((t) => (typeof t === "string" ? true : t.allowed !== false));
  if (tags.length) {
    const tag = typeof tags[0] === "string" ? tags[0] : tags[0].tag || tags[0].name;
    const until = typeof tags[0] === "object" ? tags[0].until : null;
    return { mode: "tag", tag, text: `Only with the ${tag} tag${until ? ` until ${dateTime(until)}` : ""}` };
  }
  const templates = e.templates || e.approved_templates || [];
  if (templates.length || e.templates_only) return { mode: "templates", text: "Templates only" };
  const rule = e.rule || e.blocked_by || e.error?.code;
  return { mode: "none", text: e.message ? `Nothing can be sent now: ${e.message}` : `Nothing can be sent now${rule ? ` (${String(rule).replace(/_/g, " ")})` : ""}` };
}
