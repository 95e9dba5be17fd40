"""What the demo's helpdesk cases say: per product, (subject, description, follow-up, support's
reply, resolution). Tuples, so seeded draws are the same in every process."""

from __future__ import annotations

from db.enums import Product

CaseText = tuple[str, str, str, str, str]

CASE_TEXTS: dict[str, tuple[CaseText, ...]] = {
    Product.CALLING.value: (
        (
            "Outbound calls fail with a busy tone",
            "Since this morning several users get a busy tone on every outbound PSTN call; "
            "internal calls work.",
            "It affects users on two sites, all with the same dial plan.",
            "Thanks: we see the trunk to the local gateway flapping and are looking at it.",
            "The carrier fixed a routing fault on the trunk; outbound calls work again.",
        ),
        (
            "Number porting stuck in review",
            "A port request for 40 numbers has been in review for ten days; the customer "
            "moves office next week.",
            "The losing carrier confirmed the letter of authorisation on their side.",
            "We escalated the port to the carrier team and asked for a firm date.",
            "The numbers were ported on the agreed date and are assigned to users.",
        ),
        (
            "Choppy audio on desk phones",
            "Users on desk phones report choppy audio in the afternoons; the call quality "
            "dashboard shows high jitter.",
            "The phones share a switch with the CCTV recorders.",
            "The jitter comes from the site's uplink; QoS marking is missing on that switch.",
            "The customer enabled QoS on the access switches; jitter is back below 30 ms.",
        ),
        (
            "Emergency address not accepted",
            "The emergency address of a new site is refused as invalid, so users there cannot "
            "be enabled for calling.",
            "The street name contains an apostrophe.",
            "Confirmed: a validation bug on apostrophes; a fix is scheduled.",
            "Fixed in the latest release; the address is saved and the users are enabled.",
        ),
    ),
    Product.MEETINGS.value: (
        (
            "Recordings missing after meetings",
            "Cloud recordings of yesterday's all-hands do not show up in the recordings list.",
            "The host's licence was changed during the meeting.",
            "The recording was stored under the old licence; we are moving it.",
            "The recordings were moved to the host's account and are available again.",
        ),
        (
            "Meeting room devices offline",
            "Four room devices show offline in the console although they are powered and on "
            "the network.",
            "The customer rotated its proxy certificates yesterday.",
            "The devices no longer trust the proxy; they need the new CA certificate.",
            "The CA certificate was pushed to the devices; all four are online.",
        ),
        (
            "Licence count not updated after order",
            "An order for 50 more Meetings licences completed but the customer still sees the "
            "old count.",
            "The order shows as completed in Partner Hub.",
            "Provisioning of the added licences was queued behind a failed job; re-run.",
            "The licences are provisioned and visible to the customer.",
        ),
    ),
    Product.MESSAGING.value: (
        (
            "Guest users cannot join spaces",
            "External guests get an error when they open the invitation link to a space.",
            "It started after the customer changed its external communication policy.",
            "The policy blocks all external domains; allow-listing is needed.",
            "The customer allow-listed the partner domains; guests can join.",
        ),
        (
            "Message retention shorter than configured",
            "Messages older than 90 days disappear although retention is set to one year.",
            "Only spaces created before the migration are affected.",
            "Those spaces kept the retention of the old organisation; we are re-applying it.",
            "Retention was re-applied to the migrated spaces.",
        ),
    ),
    Product.REAL_TIME_TRANSLATION.value: (
        (
            "Translated captions lag behind",
            "Translated captions in German arrive ten to fifteen seconds late in large meetings.",
            "Original-language captions are on time.",
            "A capacity issue in the EU region; the service team is adding capacity.",
            "Capacity was added; captions arrive within two seconds again.",
        ),
        (
            "Language missing from the translation list",
            "Hosts cannot pick Portuguese (Brazil) for translated captions.",
            "The language was available last month.",
            "The language list depends on the host's site version; the site is being updated.",
            "The site was updated; the language is available.",
        ),
    ),
    Product.CONTACT_CENTER.value: (
        (
            "Agents stuck in wrap-up state",
            "Several agents stay in wrap-up after calls and receive no new calls.",
            "It happens after transfers to the supervisor queue.",
            "A known issue with transfers to queues with a wrap-up timer; a workaround is to "
            "set the timer on the entry point.",
            "The fix was deployed; agents return to available after wrap-up.",
        ),
        (
            "Queue statistics not updating",
            "The real-time queue statistics of the customer have not refreshed for an hour.",
            "Historical reports are fine.",
            "The real-time feed of the customer's tenant stalled; restarting it.",
            "The feed was restarted and the statistics refresh every few seconds.",
        ),
        (
            "High abandonment on the support queue",
            "Abandonment on the customer's support queue went from 5 % to 35 % this week.",
            "Staffing is unchanged.",
            "The queue's overflow now points to a closed entry point; callers hang up.",
            "The overflow target was corrected; abandonment is back to normal.",
        ),
    ),
}
GENERAL_TEXTS: tuple[CaseText, ...] = (
    (
        "Invoice amount does not match the order",
        "The latest invoice of a customer is higher than the licences ordered.",
        "The invoice includes licences that were removed last month.",
        "The removal was processed after the billing cut-off; a credit note will follow.",
        "A credit note was issued for the difference.",
    ),
    (
        "Partner admin cannot see an assigned customer",
        "An administrator assigned to a customer does not see it in the customer list.",
        "The assignment was made an hour ago.",
        "The administrator's token predates the change of role; signing in again fixes it.",
        "The administrator signed in again and sees the customer.",
    ),
)
