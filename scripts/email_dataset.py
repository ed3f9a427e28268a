"""Generate the email datasets shipped in src/pull/email/data (deterministic, seed 19).

    uv run python scripts/email_dataset.py

Writes `labeled.jsonl` (the triage/smart-reply training and held-out set) and `mailbox.jsonl`
(the sandbox mailbox Nylas' sandbox serves). Both are synthetic: written by this script from
hand-made templates, no real person's mail; released under CC0-1.0 (data/README.md).

The held-out split is by *template*: a quarter of each category's templates never appear in
training, so the reported F1 measures phrasing the model has not seen, not memorised strings.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from dataclasses import dataclass
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "src" / "pull" / "email" / "data"
SEED = 19


@dataclass(frozen=True)
class T:
    """One template: category, reply intent (a reply is worth suggesting unless `none`), sender
    kind, subject and body; its priority follows from these (`priority`)."""

    category: str
    intent: str  # none | schedule | question | thanks | request | confirm | news
    sender: str  # person | brand | network | list | bank | broker
    subject: str
    body: str


FIRST = [
    "Maya",
    "Liam",
    "Sofia",
    "Noah",
    "Aisha",
    "Mateo",
    "Priya",
    "Ethan",
    "Chloe",
    "Omar",
    "Hana",
    "Lucas",
    "Zara",
    "Diego",
    "Nina",
    "Kofi",
    "Elena",
    "Ravi",
    "Grace",
    "Tomas",
]
LAST = [
    "Patel",
    "Okafor",
    "Nguyen",
    "Garcia",
    "Kowalski",
    "Haddad",
    "Silva",
    "Chen",
    "Murphy",
    "Rossi",
    "Tanaka",
    "Novak",
    "Adeyemi",
    "Larsen",
    "Costa",
    "Ibrahim",
    "Schmidt",
    "Reyes",
]
COMPANY = ["Northwind", "Bluefin", "Acme Labs", "Greenleaf", "Copperline", "Brightpath", "Orbit"]
STORE = ["Trailhead Outfitters", "Lumen Home", "Cobalt Shoes", "Fernway Books", "Parcel & Pine"]
NETWORK = ["LinkedIn", "Facebook", "Instagram", "X", "Strava", "Nextdoor", "Pinterest"]
GROUP = ["python-dev", "pgsql-general", "rust-users", "homeowners-assoc", "bike-club", "ml-reading"]
PROJECT = [
    "the Q3 roadmap",
    "the onboarding deck",
    "the pricing page",
    "the board memo",
    "the migration plan",
    "the hiring plan",
    "the vendor contract",
]
TICKER = ["AAPL", "TSLA", "NVDA", "BTC", "ETH", "SPY", "AMZN", "MSFT", "PSA10-CHARIZARD"]
MARKET = [
    "FED-RATE-DEC",
    "CPI-ABOVE-3",
    "NBA-FINALS-BOS",
    "BTC-100K-EOY",
    "RAIN-NYC-SAT",
    "ELECTION-TURNOUT-60",
]
PRODUCT = [
    "running jacket",
    "desk lamp",
    "noise-cancelling headphones",
    "linen sheets",
    "trail shoes",
    "cookbook",
    "backpack",
]
DAY = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"]
TIME = ["9:30", "10am", "11:15", "1pm", "2:30", "3pm", "4:45"]

FOOTER_MARKETING = [
    "You are receiving this email because you signed up at {store}. Unsubscribe anytime.",
    "View this email in your browser. Manage preferences or unsubscribe.",
    "",
]
FOOTER_NOTIFY = [
    "You received this notification because of your account settings.",
    "To stop these emails, change your notification settings.",
    "",
]
SIGNOFF = ["Thanks,", "Best,", "Cheers,", "Talk soon,", "Regards,", ""]
NOISE = [
    "Hope your week is going well.",
    "Sorry for the slow reply.",
    "Quick note before I forget.",
    "Let me know if you have any questions.",
    "This message was sent from my phone.",
    "",
    "",
    "",
]

TEMPLATES: list[T] = [
    # --- primary: people writing to you ---------------------------------------------------
    T(
        "primary",
        "schedule",
        "person",
        "Can we meet {day} about {project}?",
        "Hi {me}, are you free on {day} at {time} to go over {project}? It should take 30 "
        "minutes. If that does not work, suggest another slot.",
    ),
    T(
        "primary",
        "question",
        "person",
        "Quick question",
        "Hey {me}, did you get a chance to look at {project}? I wanted to know whether we are "
        "still presenting it {day} or pushing it a week.",
    ),
    T(
        "primary",
        "thanks",
        "person",
        "Thank you!",
        "{me}, thank you so much for helping with {project} yesterday. I really appreciate you "
        "staying late, it made a big difference.",
    ),
    T(
        "primary",
        "request",
        "person",
        "Could you send me {project}?",
        "Hi {me}, could you send me the latest version of {project} before {day}? I need to "
        "review it before the meeting with {company}.",
    ),
    T(
        "primary",
        "confirm",
        "person",
        "Dinner {day}?",
        "Hi {me}! We are doing dinner at our place on {day} around {time}. Can you make it? "
        "Bring nothing, just yourself.",
    ),
    T(
        "primary",
        "news",
        "person",
        "Big news",
        "Hi {me}, I wanted you to hear it from me first: I accepted the offer from {company} "
        "and start next month. Let's grab coffee before I go.",
    ),
    T(
        "primary",
        "question",
        "person",
        "Re: {project}",
        "Thanks {me}. One more thing on {project}: do you think the numbers in section two are "
        "final, or should I wait for the revised figures?",
    ),
    T(
        "primary",
        "request",
        "person",
        "Need your sign-off today",
        "{me}, I need your approval on {project} by end of day so legal at {company} can "
        "proceed. Can you review and reply with your OK?",
    ),
    T(
        "primary",
        "schedule",
        "person",
        "Coffee next week?",
        "Hey {me}, it's been a while! Want to grab coffee next week? I'm free {day} morning or "
        "any afternoon after {time}.",
    ),
    T(
        "primary",
        "thanks",
        "person",
        "Thanks for the intro",
        "Hi {me}, thanks for introducing me to {other}. We had a great chat and are meeting "
        "again soon. I owe you one.",
    ),
    T(
        "primary",
        "question",
        "person",
        "Are you coming to the offsite?",
        "Hi {me}, are you joining the team offsite on {day}? I'm putting together the headcount "
        "for the restaurant booking.",
    ),
    T(
        "primary",
        "request",
        "person",
        "Urgent: can you cover for me?",
        "{me}, something came up with my family. Could you cover the {time} call with {company} "
        "today? The notes are in {project}.",
    ),
    T(
        "primary",
        "confirm",
        "person",
        "Interview confirmation",
        "Dear {me}, we would like to invite you for an interview at {company} on {day} at "
        "{time}. Please confirm whether this time works for you.",
    ),
    T(
        "primary",
        "news",
        "person",
        "Photos from the weekend",
        "Hi {me}, here are a few photos from the weekend at the lake. The kids loved it. We "
        "should do it again in the summer.",
    ),
    T(
        "primary",
        "schedule",
        "person",
        "Reschedule our 1:1",
        "Hi {me}, I have a conflict with our 1:1 on {day}. Could we move it to {time} the same "
        "day, or would later in the week be better for you?",
    ),
    T(
        "primary",
        "request",
        "person",
        "Feedback on my draft",
        "Hi {me}, when you have a moment could you read my draft of {project} and tell me what "
        "you think? Honest feedback is welcome.",
    ),
    T(
        "primary",
        "thanks",
        "person",
        "Thanks again",
        "{me}, just wanted to say thanks again for dinner on {day}. The food was amazing and it "
        "was so good to catch up. Next time is on us.",
    ),
    T(
        "primary",
        "thanks",
        "person",
        "Really appreciate it",
        "Hi {me}, I really appreciate you reviewing {project} on such short notice. Your "
        "comments saved me a lot of time. Thank you!",
    ),
    T(
        "primary",
        "confirm",
        "person",
        "Are we still on for {day}?",
        "Hey {me}, just checking that we are still on for {day} at {time}. Let me know if "
        "anything changed, otherwise see you there.",
    ),
    T(
        "primary",
        "confirm",
        "person",
        "Please RSVP: team lunch",
        "Hi {me}, we are booking a table for the team lunch on {day}. Will you join us? Please "
        "let me know by tomorrow so I can confirm the numbers.",
    ),
    T(
        "primary",
        "news",
        "person",
        "We're engaged!",
        "{me}! I have to tell you: we got engaged last weekend. We are still over the moon. "
        "More details soon, and save the date for next summer.",
    ),
    T(
        "primary",
        "news",
        "person",
        "Some good news",
        "Hi {me}, good news: {company} signed the contract this morning, so {project} is "
        "going ahead. Thank you for all your help getting it over the line.",
    ),
    T(
        "primary",
        "schedule",
        "person",
        "When are you free for a call?",
        "Hi {me}, when would be a good time for a quick call about {project}? I can do {day} "
        "after {time} or any time Thursday. Send me a slot that works.",
    ),
    T(
        "primary",
        "question",
        "person",
        "Do you know who owns this?",
        "Hey {me}, do you know who owns {project} now that the team was reorganised? I have a "
        "question about the budget and I'm not sure who to ask.",
    ),
    # --- social: networks -------------------------------------------------------------------
    T(
        "social",
        "none",
        "network",
        "{other} commented on your post",
        '{other} commented on your post: "Great point about {project}!" See the conversation '
        "on {network}.",
    ),
    T(
        "social",
        "none",
        "network",
        "You have a new follower",
        "{other} started following you on {network}. Follow back to see their updates in your "
        "feed.",
    ),
    T(
        "social",
        "none",
        "network",
        "{other} sent you a friend request",
        "{other} wants to connect with you on {network}. You have 4 mutual friends. Accept or "
        "ignore the request.",
    ),
    T(
        "social",
        "none",
        "network",
        "{other} tagged you in a photo",
        "{other} tagged you in a photo on {network}. Review tags before they appear on your "
        "profile.",
    ),
    T(
        "social",
        "none",
        "network",
        "People you may know",
        "Grow your network on {network}: {other} and 12 others you may know joined recently. "
        "Connect with them.",
    ),
    T(
        "social",
        "none",
        "network",
        "{other} mentioned you",
        '{other} mentioned you in a comment on {network}: "@{me} what do you think?" Reply '
        "on {network}.",
    ),
    T(
        "social",
        "none",
        "network",
        "Your post is getting attention",
        "Your post had 48 reactions and 9 comments this week on {network}. See who viewed your "
        "profile.",
    ),
    T(
        "social",
        "none",
        "network",
        "{other} shared a memory with you",
        "{other} shared a memory with you on {network}: 3 years ago today. See the photo and "
        "share it with friends.",
    ),
    T(
        "social",
        "none",
        "network",
        "Congratulate {other} on the new role",
        "{other} started a new position at {company}. Say congrats on {network}.",
    ),
    T(
        "social",
        "none",
        "network",
        "New message request",
        "{other} sent you a message request on {network}. Open the app to see the message and "
        "decide whether to accept.",
    ),
    T(
        "social",
        "none",
        "network",
        "{other} liked your photo",
        "{other} and 6 others liked your photo on {network}. See all likes and comments.",
    ),
    T(
        "social",
        "none",
        "network",
        "Your weekly activity summary",
        "This week on {network}: 3 new followers, 21 profile views, 5 posts from people you "
        "follow. Open {network} to catch up.",
    ),
    T(
        "social",
        "none",
        "network",
        "{other} invited you to an event",
        '{other} invited you to "Sunday group ride" on {network}. 14 people are going. '
        "Respond going, maybe or can't go.",
    ),
    T(
        "social",
        "none",
        "network",
        "Birthday reminder",
        "Today is {other}'s birthday. Write on their timeline on {network} to let them know "
        "you're thinking of them.",
    ),
    # --- promotions -------------------------------------------------------------------------
    T(
        "promotions",
        "none",
        "brand",
        "{percent}% off everything this weekend",
        "Our biggest sale of the season is here: {percent}% off sitewide at {store}, including "
        "the {product}. Use code {code} at checkout. Ends Sunday.",
    ),
    T(
        "promotions",
        "none",
        "brand",
        "Your cart misses you",
        "You left the {product} in your cart at {store}. Complete your order now and get free "
        "shipping. Limited stock.",
    ),
    T(
        "promotions",
        "none",
        "brand",
        "New arrivals just for you",
        "Fresh picks from {store}: the new {product} collection has landed. Shop now before "
        "your size sells out.",
    ),
    T(
        "promotions",
        "none",
        "brand",
        "Flash sale: 6 hours only",
        "Flash sale at {store}! Save up to {percent}% on the {product} and more. The clock is "
        "ticking. Shop the deals.",
    ),
    T(
        "promotions",
        "none",
        "brand",
        "A gift for you: free shipping",
        "As a valued customer you get free shipping on orders over $50 at {store}. Treat "
        "yourself to the {product}. Offer expires soon.",
    ),
    T(
        "promotions",
        "none",
        "brand",
        "Members save more",
        "Join {store} rewards and earn double points this month. Members get early access to "
        "sales and {percent}% off their first order.",
    ),
    T(
        "promotions",
        "none",
        "brand",
        "Last chance: {percent}% off ends tonight",
        "Final hours! Your exclusive discount code {code} for {percent}% off at {store} ends "
        "at midnight. Don't miss out on the {product}.",
    ),
    T(
        "promotions",
        "none",
        "brand",
        "Our bestsellers are back in stock",
        "Good news: the {product} is back in stock at {store}. Customers love it, rated 4.8 "
        "stars. Buy now while supplies last.",
    ),
    T(
        "promotions",
        "none",
        "brand",
        "Try it free for 30 days",
        "Start your free trial of {store} Plus today: unlimited delivery, exclusive deals and "
        "{percent}% off the {product}. Cancel anytime.",
    ),
    T(
        "promotions",
        "none",
        "brand",
        "Black Friday starts now",
        "Black Friday deals are live at {store}. Doorbusters on the {product}, bundles and "
        "gift cards. Shop early, save big.",
    ),
    T(
        "promotions",
        "none",
        "brand",
        "You're invited: VIP preview",
        "You're on the list! Get a VIP preview of the spring collection at {store} with "
        "{percent}% off for invited guests only. Shop the preview.",
    ),
    T(
        "promotions",
        "none",
        "brand",
        "Buy one, get one free",
        "BOGO week at {store}: buy one {product}, get one free. Mix and match favourites. "
        "While supplies last.",
    ),
    T(
        "promotions",
        "none",
        "brand",
        "Recommended for you",
        "Based on your browsing, we think you'll love the {product}. Special price this week "
        "only at {store}. See more recommendations.",
    ),
    T(
        "promotions",
        "none",
        "brand",
        "Happy birthday! Here's a treat",
        "Happy birthday from {store}! Enjoy {percent}% off anything with code {code}, valid "
        "for 7 days. Celebrate with the {product}.",
    ),
    # --- updates: receipts, shipping, accounts, reminders ---------------------------------------
    T(
        "updates",
        "none",
        "brand",
        "Your order has shipped",
        "Good news: your {store} order #{code} with the {product} has shipped. Track your "
        "package; estimated delivery {day}.",
    ),
    T(
        "updates",
        "none",
        "brand",
        "Your password was changed",
        "The password for your {company} account was changed on {day}. If this was not you, "
        "reset your password and contact support immediately.",
    ),
    T(
        "updates",
        "none",
        "brand",
        "Appointment reminder",
        "This is a reminder of your appointment at {company} clinic on {day} at {time}. To "
        "reschedule, use the patient portal.",
    ),
    T(
        "updates",
        "none",
        "brand",
        "Your order confirmation",
        "Thanks for your order #{code} at {store}. We will email you when the {product} "
        "ships. Order summary and delivery address below.",
    ),
    T(
        "updates",
        "none",
        "brand",
        "New sign-in to your account",
        "We noticed a new sign-in to your {company} account from Chrome on Windows on {day}. "
        "If this was you, no action is needed.",
    ),
    T(
        "updates",
        "none",
        "brand",
        "Your package was delivered",
        "Your package from {store} was delivered {day} at {time} and left at the front door. "
        "Photo of delivery available in the app.",
    ),
    T(
        "updates",
        "none",
        "brand",
        "Your subscription renews soon",
        "Your {company} subscription renews on {day}. No action needed if you want to keep "
        "it; manage your plan in account settings.",
    ),
    T(
        "updates",
        "none",
        "brand",
        "Changes to our terms of service",
        "We are updating the {company} terms of service and privacy policy, effective {day}. "
        "Read a summary of the changes.",
    ),
    T(
        "updates",
        "none",
        "brand",
        "Verify your email address",
        "Please confirm your email address to finish setting up your {company} account. The "
        "verification link expires in 24 hours.",
    ),
    T(
        "updates",
        "none",
        "brand",
        "Your ride receipt",
        "Thanks for riding with {company}. Trip on {day} at {time}, 6.2 miles, 18 minutes. "
        "Rate your driver in the app.",
    ),
    T(
        "updates",
        "none",
        "brand",
        "Flight check-in is open",
        "Check-in is now open for your {company} Airlines flight on {day}. Get your boarding "
        "pass and choose your seat.",
    ),
    T(
        "updates",
        "none",
        "brand",
        "Your return has been processed",
        "We received your return of the {product} at {store}. Your refund will appear on your "
        "original payment method in 3-5 business days.",
    ),
    T(
        "updates",
        "none",
        "brand",
        "Software update available",
        "A new version of the {company} app is available with security fixes. Update now from "
        "your device settings.",
    ),
    T(
        "updates",
        "none",
        "brand",
        "Your reservation is confirmed",
        "Your table for 4 at {company} Bistro on {day} at {time} is confirmed. Reply C to "
        "cancel. We look forward to seeing you.",
    ),
    # --- forums: mailing lists, groups, digests ------------------------------------------------
    T(
        "forums",
        "none",
        "list",
        "[{group}] Re: proposal to deprecate the old API",
        "On {day}, {other} wrote: I agree with the proposal but we need a longer deprecation "
        "window. -- You received this message because you are subscribed to the {group} "
        "group.",
    ),
    T(
        "forums",
        "none",
        "list",
        "[{group}] Digest, Vol 212, Issue 4",
        "Today's topics: 1. Re: release schedule ({other}) 2. build failure on arm64 3. "
        "meeting minutes. Send submissions to the {group} mailing list.",
    ),
    T(
        "forums",
        "none",
        "list",
        "[{group}] New topic: best practices for backups",
        "{other} posted a new topic in {group}: what are your best practices for backups? "
        "Reply to this email to post to the thread. Unsubscribe from this group.",
    ),
    T(
        "forums",
        "none",
        "list",
        "Re: [{group}] meeting minutes",
        "Minutes from the {group} monthly meeting are attached. Action items: {other} to draft "
        "the budget. Reply to the list with corrections.",
    ),
    T(
        "forums",
        "none",
        "list",
        "[{group}] Call for volunteers",
        "Hi all, the {group} community is looking for volunteers for the spring event. Reply "
        "on the thread if you can help. List archives are online.",
    ),
    T(
        "forums",
        "none",
        "list",
        "{other} replied to a thread you follow",
        '{other} replied in "Slow queries after upgrade" on the {group} forum: have you '
        "tried running analyze? View the thread or mute it.",
    ),
    T(
        "forums",
        "none",
        "list",
        "[{group}] ANN: version 3.2 released",
        "We are pleased to announce the release of version 3.2. Highlights and the changelog "
        "are on the project page. Thanks to all {group} contributors.",
    ),
    T(
        "forums",
        "none",
        "list",
        "Weekly digest from the {group} community",
        "Top discussions this week in {group}: 14 new posts, 3 solved questions. Most liked "
        "answer by {other}. Manage your digest settings.",
    ),
    T(
        "forums",
        "none",
        "list",
        "[{group}] Re: Re: question about licensing",
        "> Is it OK to bundle the library? {other}: yes, as long as you keep the notice. "
        "Posted to {group}, reply all to respond to the list.",
    ),
    T(
        "forums",
        "none",
        "list",
        "[{group}] Moderator notice",
        "A reminder from the {group} moderators: keep threads on topic and be kind. Posts "
        "that break the code of conduct will be removed.",
    ),
    T(
        "forums",
        "none",
        "list",
        "New answer to your question",
        "Your question in the {group} forum got a new answer from {other}. Mark it as accepted "
        "if it solved your problem.",
    ),
    T(
        "forums",
        "none",
        "list",
        "[{group}] Poll: next meetup location",
        "Vote in the {group} poll for the next meetup: downtown library or the co-working "
        "space. Results will be posted to the list on {day}.",
    ),
    T(
        "forums",
        "none",
        "list",
        "[{group}] Patch review requested",
        "{other} has submitted a patch for review to {group}: fix race in connection pool. "
        "Reviewers please reply to the list with comments.",
    ),
    T(
        "forums",
        "none",
        "list",
        "Your group membership was approved",
        "Welcome to {group}! Your request to join was approved. Post by emailing the group "
        "address; read the archives on the web.",
    ),
    # --- finance: PULL's own category ----------------------------------------------------------
    T(
        "finance",
        "none",
        "bank",
        "Your statement is ready",
        "Your {company} Bank statement for the period ending {day} is ready. Balance: "
        "${amount}. View your statement online.",
    ),
    T(
        "finance",
        "none",
        "bank",
        "Payment due in 3 days",
        "Your credit card payment of ${amount} is due on {day}. Pay now to avoid a late fee "
        "and interest charges.",
    ),
    T(
        "finance",
        "none",
        "bank",
        "Deposit received",
        "A deposit of ${amount} was credited to your PULL cash balance on {day}. Your available "
        "balance is updated.",
    ),
    T(
        "finance",
        "none",
        "bank",
        "Withdrawal processed",
        "Your withdrawal of ${amount} to the bank account ending 4821 was processed on {day}. "
        "Funds arrive in 1-3 business days.",
    ),
    T(
        "finance",
        "none",
        "bank",
        "Your tax documents are available",
        "Your 1099 tax form for last year is now available in your {company} account. Download "
        "it before filing your return.",
    ),
    T(
        "finance",
        "request",
        "bank",
        "Invoice #{code} from {company}",
        "Please find attached invoice #{code} for ${amount}, due within 30 days. Let us know "
        "if you have any questions about the charges.",
    ),
    T(
        "finance",
        "none",
        "bank",
        "Unusual card activity",
        "We noticed a charge of ${amount} on your card ending 4821 that looks unusual. If you "
        "don't recognise it, lock your card and call us.",
    ),
    T(
        "finance",
        "none",
        "bank",
        "Direct deposit scheduled",
        "Your paycheck direct deposit of ${amount} from {company} is scheduled for {day}. "
        "Check your account for the credit.",
    ),
    T(
        "finance",
        "none",
        "bank",
        "Autopay confirmation",
        "Your autopay of ${amount} to {company} Energy was successful on {day}. Confirmation "
        "number {code}.",
    ),
    T(
        "finance",
        "none",
        "bank",
        "Low balance alert",
        "Your checking account balance fell below $100 on {day}. Current balance: ${amount}. "
        "Transfer funds to avoid an overdraft fee.",
    ),
    T(
        "finance",
        "none",
        "bank",
        "Your loan payment was received",
        "We received your loan payment of ${amount} on {day}. Remaining principal and your "
        "next due date are in your account.",
    ),
    T(
        "finance",
        "none",
        "bank",
        "Interest earned this month",
        "You earned ${amount} in interest on your savings account this month at 4.1% APY. "
        "Your balance keeps growing.",
    ),
    T(
        "finance",
        "none",
        "bank",
        "Wire transfer completed",
        "Your outgoing wire of ${amount} to {other} was completed on {day}. Reference {code}. "
        "Keep this for your records.",
    ),
    T(
        "finance",
        "none",
        "bank",
        "Refund issued to your account",
        "A refund of ${amount} from {company} was credited to your account on {day}. It may "
        "take a day to show in your available balance.",
    ),
    # --- trading alerts: PULL's own category ---------------------------------------------------
    T(
        "trading alerts",
        "none",
        "broker",
        "Price alert: {ticker} crossed ${amount}",
        "{ticker} crossed your alert price of ${amount}, up {percent}% today. Open the app to "
        "trade or adjust your alert.",
    ),
    T(
        "trading alerts",
        "none",
        "broker",
        "Order filled: buy {ticker}",
        "Your limit order to buy 10 shares of {ticker} at ${amount} was filled at {time}. "
        "View the execution in your portfolio.",
    ),
    T(
        "trading alerts",
        "none",
        "broker",
        "Margin call on your account",
        "Your account is below the maintenance margin requirement. Deposit ${amount} or close "
        "positions by {day} to avoid liquidation.",
    ),
    T(
        "trading alerts",
        "none",
        "broker",
        "Market settled: {market}",
        "The market {market} settled YES. Your 25 contracts paid out ${amount} to your cash "
        "balance.",
    ),
    T(
        "trading alerts",
        "none",
        "broker",
        "Stop-loss triggered on {ticker}",
        "Your stop-loss on {ticker} triggered at ${amount}. The position was sold at market. "
        "Review your trade history.",
    ),
    T(
        "trading alerts",
        "none",
        "broker",
        "{market} closes in 1 hour",
        "Trading in {market} closes in one hour. You hold 40 YES contracts, last price 62c. "
        "Trade now or hold to settlement.",
    ),
    T(
        "trading alerts",
        "none",
        "broker",
        "{ticker} is up {percent}% on your watchlist",
        "{ticker} on your watchlist moved {percent}% since the open to ${amount}. See the chart "
        "and news.",
    ),
    T(
        "trading alerts",
        "none",
        "broker",
        "Your order was partially filled",
        "Your order to sell 100 {market} NO contracts at 38c was partially filled: 60 of 100. "
        "The rest stays on the book.",
    ),
    T(
        "trading alerts",
        "none",
        "broker",
        "Position limit reached",
        "You reached the position limit for {market}. New buy orders will be rejected until you "
        "reduce your exposure.",
    ),
    T(
        "trading alerts",
        "none",
        "broker",
        "Order cancelled: {ticker}",
        "Your good-till-cancelled order for {ticker} at ${amount} expired and was cancelled at "
        "market close.",
    ),
    T(
        "trading alerts",
        "none",
        "broker",
        "Dividend paid on {ticker}",
        "A dividend of ${amount} on your {ticker} shares was paid into your brokerage cash on "
        "{day}.",
    ),
    T(
        "trading alerts",
        "none",
        "broker",
        "Volatility alert: {ticker} halted",
        "Trading in {ticker} was halted for volatility at {time}. Open orders remain working "
        "and will resume when trading restarts.",
    ),
    T(
        "trading alerts",
        "none",
        "broker",
        "New market: {market}",
        "A new market you follow opened: {market}. YES is trading at 44c. Place an order "
        "before the price moves.",
    ),
    T(
        "trading alerts",
        "none",
        "broker",
        "Daily P&L: {percent}% on your positions",
        "Your portfolio moved {percent}% today. Biggest mover: {ticker} at ${amount}. Open "
        "positions and unrealised P&L are in the app.",
    ),
]

SENDERS = {
    "network": lambda r, f: (f["network"], f"notification@{f['network'].lower()}mail.com"),
    "brand": lambda r, f: (f["store"], f"news@{f['store'].split()[0].lower()}.com"),
    "list": lambda r, f: (f"{f['group']} mailing list", f"{f['group']}@lists.example.org"),
    "bank": lambda r, f: (
        f"{f['company']} Bank",
        f"alerts@{f['company'].split()[0].lower()}bank.com",
    ),
    "broker": lambda r, f: ("PULL Alerts", "alerts@pull.app"),
}


def fill(template: T, rng: random.Random, me: str) -> dict[str, str]:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    f = {
        "me": me,
        "other": f"{rng.choice(FIRST)} {rng.choice(LAST)}",
        "company": rng.choice(COMPANY),
        "store": rng.choice(STORE),
        "network": rng.choice(NETWORK),
        "group": rng.choice(GROUP),
        "project": rng.choice(PROJECT),
        "ticker": rng.choice(TICKER),
        "market": rng.choice(MARKET),
        "product": rng.choice(PRODUCT),
        "day": rng.choice(DAY),
        "time": rng.choice(TIME),
        "percent": str(rng.choice([10, 15, 20, 25, 30, 40, 50, 60, 70])),
        "code": f"{rng.randrange(10000, 99999)}",
        "amount": f"{rng.randrange(5, 9000)}.{rng.randrange(0, 99):02d}",
    }
    subject = template.subject.format(**f)
    body = template.body.format(**f)
    pre, post = rng.choice(NOISE), ""
    if template.sender == "person":
        post = f"\n\n{rng.choice(SIGNOFF)}\n{first}"
        name, email = (
            f"{first} {last}",
            f"{first.lower()}.{last.lower()}@{f['company'].split()[0].lower()}.com",
        )
        body = f"{pre} {body}".strip() if pre else body
    else:
        name, email = SENDERS[template.sender](rng, f)
        footer = rng.choice(
            FOOTER_MARKETING if template.category == "promotions" else FOOTER_NOTIFY
        )
        post = f"\n\n{footer.format(**f)}" if footer else ""
    return {"subject": subject, "body": body + post, "from_name": name, "from_email": email}


# Priority, one definition for every message (docs/email.md, "Priority"): what a reader should
# see first, decided from who sent it and what it asks, never from a template's whim.
#   low:    bulk mail not written to the reader as a person: promotions, social-network
#           notifications, forums and mailing lists.
#   high:   someone or something is waiting on the reader: a person asks a question, a favour,
#           a decision or a time (intents question, request, schedule, confirm), or an
#           automated message reports a risk to the reader's money or account that needs
#           checking now (the subjects in ATTENTION: security events, money due or short,
#           positions closed or blocked without the reader's order).
#   normal: the rest: people's mail that asks nothing (thanks, news), receipts, confirmations
#           and information about the reader's own accounts and orders.
BULK = {"promotions", "social", "forums"}
WAITING = {"question", "request", "schedule", "confirm"}
ATTENTION = {
    "Your password was changed",
    "New sign-in to your account",
    "Payment due in 3 days",
    "Unusual card activity",
    "Low balance alert",
    "Margin call on your account",
    "Stop-loss triggered on {ticker}",
    "Position limit reached",
    "Volatility alert: {ticker} halted",
}


def priority(t: T) -> str:
    if t.category in BULK:
        return "low"
    if t.sender == "person":
        return "high" if t.intent in WAITING else "normal"
    return "high" if t.subject in ATTENTION else "normal"


def labeled(rng: random.Random) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    by_cat: dict[str, list[int]] = {}
    for i, t in enumerate(TEMPLATES):
        by_cat.setdefault(t.category, []).append(i)
    held_out: set[int] = set()
    for ids in by_cat.values():
        shuffled = ids[:]
        rng.shuffle(shuffled)
        held_out.update(shuffled[: max(1, len(ids) // 4)])
    for i, t in enumerate(TEMPLATES):
        split = "test" if i in held_out else "train"
        for _ in range(30):
            msg = fill(t, rng, rng.choice(FIRST))
            rows.append(
                {
                    **msg,
                    "category": t.category,
                    "priority": priority(t),
                    "reply": t.intent != "none",
                    "intent": t.intent,
                    "template": i,
                    "split": split,
                }
            )
    return rows


def mailbox(rng: random.Random, count: int = 320) -> list[dict[str, object]]:
    """The sandbox mailbox: newest last; the last 12 arrive by webhook after connecting, one of
    them larger than 1 MB (Nylas sends `message.created.truncated` and drops its body)."""
    start = dt.datetime(2026, 10, 1, 8, 0, tzinfo=dt.UTC)
    rows: list[dict[str, object]] = []
    threads: list[tuple[str, str]] = []  # (thread id, subject) of people's mail, for replies
    for n in range(count):
        t = rng.choice(TEMPLATES)
        msg = fill(t, rng, "Alex")
        thread_id = f"thr_{n:04d}"
        if t.sender == "person" and threads and rng.random() < 0.3:
            thread_id, subject = rng.choice(threads)
            msg["subject"] = subject if subject.startswith("Re: ") else f"Re: {subject}"
        elif t.sender == "person":
            threads.append((thread_id, str(msg["subject"])))
        at = start + dt.timedelta(minutes=n * 271 + rng.randrange(0, 200))
        rows.append(
            {
                "id": f"msg_{n:04d}",
                "thread_id": thread_id,
                **msg,
                "date": int(at.timestamp()),
                "unread": rng.random() < 0.4,
                "starred": rng.random() < 0.05,
                "category": t.category,
                "live": n >= count - 12,
                "large": n == count - 3,
            }
        )
    return rows


def main() -> None:
    rng = random.Random(SEED)
    OUT.mkdir(parents=True, exist_ok=True)
    with (OUT / "labeled.jsonl").open("w") as fh:
        for row in labeled(rng):
            fh.write(json.dumps(row, sort_keys=True) + "\n")
    with (OUT / "mailbox.jsonl").open("w") as fh:
        for row in mailbox(rng):
            fh.write(json.dumps(row, sort_keys=True) + "\n")
    print(f"wrote {OUT / 'labeled.jsonl'} and {OUT / 'mailbox.jsonl'}")


if __name__ == "__main__":
    main()
