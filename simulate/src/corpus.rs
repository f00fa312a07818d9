//! Built-in lines for synthetic support conversations.
//!
//! Lines may contain placeholders (`{order}`, `{date}`, ...) that the script
//! fills with per-conversation values, so one conversation talks about one
//! order number throughout.

/// A user line and the agent's answer to it.
pub(crate) struct Exchange {
    pub user: &'static str,
    pub agent: &'static str,
    pub tool: Option<ToolSpec>,
}

/// A tool the agent calls before answering.
pub(crate) struct ToolSpec {
    pub name: &'static str,
    /// JSON arguments (with placeholders).
    pub arguments: &'static str,
    /// JSON result when the call succeeds (with placeholders).
    pub result: &'static str,
    /// What the agent says instead of `Exchange::agent` when the call fails.
    pub agent_on_error: &'static str,
}

/// One kind of support call: an opening, a story told in order, then generic filler.
pub(crate) struct Scenario {
    /// What an outbound call is about ("your delivery").
    pub topic: &'static str,
    /// `convolog.intent`, and the `convolog.flow` the agent runs for it.
    pub intent: &'static str,
    pub flow: &'static str,
    /// Inbound first turn: the user states the problem, the agent asks for an identifier.
    pub opening: Exchange,
    /// Played in order after the opening; the first one answers the agent's question.
    pub story: &'static [Exchange],
}

const fn line(user: &'static str, agent: &'static str) -> Exchange {
    Exchange {
        user,
        agent,
        tool: None,
    }
}

const fn with_tool(user: &'static str, agent: &'static str, tool: ToolSpec) -> Exchange {
    Exchange {
        user,
        agent,
        tool: Some(tool),
    }
}

const SYSTEM_DOWN: &str = "I'm sorry, I can't reach that system right now. Let me note your request and we'll follow up by email within the hour.";

pub(crate) const SCENARIOS: &[Scenario] = &[
    Scenario {
        topic: "your delivery",
        intent: "order_status",
        flow: "order_support",
        opening: line(
            "Hi, I'm calling about my order, it still hasn't arrived.",
            "I'm sorry to hear that. Could you give me your order number?",
        ),
        story: &[
            with_tool(
                "Sure, it's {order}.",
                "Thanks. Order {order} shipped with UPS and is due to arrive on {date}.",
                ToolSpec {
                    name: "lookup_order",
                    arguments: r#"{"order_id":"{order}"}"#,
                    result: r#"{"order_id":"{order}","status":"in_transit","carrier":"UPS","eta":"{date}"}"#,
                    agent_on_error: SYSTEM_DOWN,
                },
            ),
            line(
                "It said two days when I ordered. Why is it late?",
                "There was a delay at the sorting hub in your region. I'm sorry about that.",
            ),
            with_tool(
                "Can you make sure it comes to {address} and not my old place?",
                "Done. The delivery address is now {address}.",
                ToolSpec {
                    name: "update_shipping_address",
                    arguments: r#"{"order_id":"{order}","address":"{address}"}"#,
                    result: r#"{"ok":true,"address":"{address}"}"#,
                    agent_on_error: "I couldn't update the address just now. I've flagged the order so the carrier calls you before delivery.",
                },
            ),
        ],
    },
    Scenario {
        topic: "your appointment",
        intent: "reschedule_appointment",
        flow: "bookings",
        opening: line(
            "Hello, I need to move my appointment to another day.",
            "Happy to help with that. What's the booking reference?",
        ),
        story: &[
            with_tool(
                "It's {order}, under the name {name}.",
                "Got it, {name}. I have openings on {date} at {time} or later that afternoon.",
                ToolSpec {
                    name: "check_availability",
                    arguments: r#"{"booking_id":"{order}","from":"{date}"}"#,
                    result: r#"{"slots":["{date} {time}","{date} 15:30"]}"#,
                    agent_on_error: "Our calendar isn't loading for me right now. Could I call you back once it's up?",
                },
            ),
            with_tool(
                "{time} works for me.",
                "You're booked for {date} at {time}. The old slot has been released.",
                ToolSpec {
                    name: "book_appointment",
                    arguments: r#"{"booking_id":"{order}","slot":"{date} {time}"}"#,
                    result: r#"{"confirmed":true,"slot":"{date} {time}"}"#,
                    agent_on_error: "The booking didn't go through on my end. Your original slot is still held for now.",
                },
            ),
            line(
                "Do I need to bring anything?",
                "Just a photo ID and your booking reference.",
            ),
        ],
    },
    Scenario {
        topic: "your refund request",
        intent: "refund",
        flow: "order_support",
        opening: line(
            "Hi, I returned a jacket two weeks ago and haven't seen my refund.",
            "Let me look into that. Can you tell me the order number?",
        ),
        story: &[
            with_tool(
                "The order number is {order}.",
                "I can see the return arrived on our side. A refund of {amount} hasn't been issued yet.",
                ToolSpec {
                    name: "lookup_order",
                    arguments: r#"{"order_id":"{order}"}"#,
                    result: r#"{"order_id":"{order}","status":"returned","refund":"pending","amount":"{amount}"}"#,
                    agent_on_error: SYSTEM_DOWN,
                },
            ),
            with_tool(
                "Can you push it through now?",
                "I've issued the refund of {amount} to your original card. It should show within three to five business days.",
                ToolSpec {
                    name: "create_refund",
                    arguments: r#"{"order_id":"{order}","amount":"{amount}","reason":"return_received"}"#,
                    result: r#"{"refund_id":"rf_{order}","status":"issued"}"#,
                    agent_on_error: "The refund system rejected the request. I've escalated it to our payments team.",
                },
            ),
            line(
                "Three to five days? That's quite long.",
                "I understand. That's the time your bank needs to post it, but it's already on its way.",
            ),
        ],
    },
    Scenario {
        topic: "your bill",
        intent: "billing_dispute",
        flow: "billing",
        opening: line(
            "Hi, there's a charge on my bill I don't recognise.",
            "I can check that for you. What's the invoice number?",
        ),
        story: &[
            with_tool(
                "It's invoice {order}.",
                "That invoice includes {amount} for the premium plan upgrade on {date}.",
                ToolSpec {
                    name: "get_invoice",
                    arguments: r#"{"invoice_id":"{order}"}"#,
                    result: r#"{"invoice_id":"{order}","lines":[{"item":"premium_upgrade","amount":"{amount}","date":"{date}"}]}"#,
                    agent_on_error: "I can't pull up invoices at the moment. I'll email you a breakdown shortly.",
                },
            ),
            line(
                "I never asked for an upgrade.",
                "Thanks for telling me. I'll reverse it and switch you back to the standard plan.",
            ),
            with_tool(
                "Yes please, go ahead.",
                "Done. You're on the standard plan again and a credit of {amount} will appear on your next bill.",
                ToolSpec {
                    name: "change_plan",
                    arguments: r#"{"account":"{order}","plan":"standard","credit":"{amount}"}"#,
                    result: r#"{"plan":"standard","credit_issued":"{amount}"}"#,
                    agent_on_error: "The plan change failed on my side. I've opened a ticket so billing can fix it today.",
                },
            ),
        ],
    },
];

/// Filler that fits any scenario, used once a scenario's story runs out.
pub(crate) const GENERIC: &[Exchange] = &[
    line(
        "Will I get an email confirming that?",
        "Yes, a confirmation will reach your inbox in a few minutes.",
    ),
    line("Hang on, let me grab a pen.", "No problem, take your time."),
    line(
        "Is there anything I need to do on my end?",
        "Nothing else is needed from you right now.",
    ),
    line(
        "Sorry, can you say that again?",
        "Of course. Everything is set up and you'll get an update by email.",
    ),
    line(
        "Can you also send me a text about it?",
        "Sure, I've turned on text updates for the number on your account.",
    ),
    line(
        "And if it goes wrong again, who do I call?",
        "Just call this number again and mention your reference, we'll have the history.",
    ),
];

pub(crate) const CLOSINGS: &[Exchange] = &[
    line(
        "That's all, thank you!",
        "You're welcome, {name}. Have a great day!",
    ),
    line("Perfect, thanks for your help.", "Happy to help. Goodbye!"),
    line(
        "Great, that sorts it. Bye.",
        "Thanks for calling, {name}. Take care.",
    ),
];

/// First turn of an outbound call: the agent speaks to whoever picks up.
pub(crate) const OUTBOUND_OPENING: Exchange = line(
    "Hello?",
    "Hi {name}, this is Acme support calling about {topic}. Could you confirm the reference number for me?",
);

/// Closing turn when the user asks for a person.
pub(crate) const HANDOFF_ON_REQUEST: Exchange = line(
    "Honestly, can I just speak to a person?",
    "Of course. I'm transferring you to one of my colleagues now, please stay on the line.",
);

/// Closing turn when the agent gives up on its own.
pub(crate) const HANDOFF_BY_AGENT: Exchange = line(
    "Is there anything else you can do?",
    "I'll pass you to a specialist who can sort this out. Transferring you now.",
);

/// The agent's reply when it could not make out what the user said.
pub(crate) const FALLBACK_REPLY: &str =
    "I'm sorry, I didn't understand that. Could you say it again?";

pub(crate) const VERIFICATION_CLOSING: Exchange = line(
    "Can you just change it for me now?",
    "Before I can change anything I need to verify your identity. I've sent a one-time code to the number on your account, please call back once you have it.",
);

pub(crate) const BUDGET_CLOSING: Exchange = line(
    "Sorry, one more thing about that.",
    "We've reached the time limit for this conversation. I've saved everything and a colleague will follow up by email.",
);

/// What the agent says first when nobody speaks: a voicemail greeting on
/// outbound calls, a prompt on inbound ones.
pub(crate) const SILENT_OUTBOUND: Exchange = line(
    "",
    "Hi {name}, this is Acme support calling about {topic}. Please call us back when it suits you.",
);
pub(crate) const SILENT_INBOUND: Exchange = line(
    "",
    "Thanks for calling Acme. Hello? I can't hear anything, I'll end the call now.",
);

pub(crate) const NAMES: &[&str] = &[
    "Sarah", "James", "Priya", "Tom", "Maria", "Chen", "Fatima", "Lucas",
];
pub(crate) const DATES: &[&str] = &[
    "Monday the 9th",
    "Tuesday the 10th",
    "Thursday the 12th",
    "Friday the 13th",
    "Wednesday the 18th",
];
pub(crate) const TIMES: &[&str] = &["9:30", "10:15", "11:00", "14:45"];
pub(crate) const ADDRESSES: &[&str] = &[
    "14 Elm Street",
    "221 Baker Street",
    "9 Harbour Road",
    "77 Mill Lane",
];

pub(crate) const SYSTEM_PROMPT: &str = "You are a friendly customer support agent for Acme. \
Keep answers short and spoken-style. Use the tools to look up orders, bookings, refunds and invoices. \
If the customer asks for a human or you cannot help, transfer the call.";

/// A knowledge-base article an answer can stand on.
#[derive(Debug)]
pub(crate) struct Article {
    pub id: &'static str,
    pub title: &'static str,
    pub url: &'static str,
    pub text: &'static str,
}

pub(crate) const ARTICLES: &[Article] = &[
    Article {
        id: "kb-delivery-times",
        title: "Delivery times",
        url: "https://help.example.com/delivery-times",
        text: "Standard delivery takes 3 to 5 working days; express arrives the next working day.",
    },
    Article {
        id: "kb-tracking",
        title: "Tracking an order",
        url: "https://help.example.com/tracking",
        text: "Every order gets a tracking link by email as soon as it leaves the warehouse.",
    },
    Article {
        id: "kb-returns",
        title: "Returns and refunds",
        url: "https://help.example.com/returns",
        text: "Items can be returned within 30 days; refunds reach the card in 5 to 7 days.",
    },
    Article {
        id: "kb-appointments",
        title: "Changing an appointment",
        url: "https://help.example.com/appointments",
        text: "Appointments can be moved up to 24 hours ahead at no charge.",
    },
    Article {
        id: "kb-billing",
        title: "Billing questions",
        url: "https://help.example.com/billing",
        text: "Invoices are issued on the first of the month and can be paid by card or transfer.",
    },
    Article {
        id: "kb-notifications",
        title: "Email and text updates",
        url: "https://help.example.com/notifications",
        text: "Customers can turn on text updates for the number on their account.",
    },
];

/// Why a planted question is answered badly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Weakness {
    /// The knowledge base has nothing close; the answer's confidence is low.
    LowConfidence,
    /// The answer sounds sure but is wrong; the user gives it a thumbs-down.
    ThumbsDown,
    /// The agent answers from memory without citing anything.
    Uncited,
}

/// Questions the knowledge base answers badly, planted in some conversations so the
/// knowledge-gaps report has something to find.
pub(crate) const WEAK_QUESTIONS: &[(Exchange, Weakness)] = &[
    (
        line(
            "Do you ship to Iceland?",
            "I think we might ship there, but I'm not sure about the cost.",
        ),
        Weakness::LowConfidence,
    ),
    (
        line(
            "Can I split the payment between a gift card and my credit card?",
            "No, each order takes a single payment method.",
        ),
        Weakness::ThumbsDown,
    ),
    (
        line(
            "What does the extended warranty cover?",
            "The extended warranty covers accidental damage for two years.",
        ),
        Weakness::Uncited,
    ),
];
