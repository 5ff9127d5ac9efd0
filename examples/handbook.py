"""The sample company's handbook: Larkspur Kitchen, a fictional online shop for small kitchen
appliances. All text is written for Ladder. Each document is (file name, kind, content): kind is
"text" (Markdown, HTML, CSV: written as is), "pdf" (a list of pages) or "docx" (a list of
(heading, paragraphs) sections).

`CURRENT` is the handbook as it stands; `PREVIOUS` holds the older versions of the three
documents whose policies changed (a shorter return window, a cheaper express delivery, points
that expired sooner), so re-ingesting the current folder shows documents being replaced.
"""

from __future__ import annotations

RETURNS = """# Returns and refunds

## Return window
Returns are accepted within {days} days of delivery. The item must be unused and in its original
box, with every accessory it came with.

## Faulty items
If an appliance is faulty, the return label is free and we cover the postage. For any other reason
the label costs {label}, which is taken off the refund.

## Refund timing
Refunds go back to the original payment method within 5 business days of the parcel reaching our
warehouse in Leeds.

## Exceptions
Descaling tablets, water filters and opened bags of coffee beans cannot be returned for hygiene
reasons.
"""

SHIPPING = """# Delivery

## Standard delivery
Standard delivery takes 3 to 5 business days and costs £3.95. Orders over £50 ship free.

## Express delivery
Express next-day delivery costs {express} when the order is placed before {cutoff} on a weekday.
Orders placed after that go out on the following business day.

## Couriers
Parcels travel with Parcelwing. Every order gets a tracking link by email once it leaves the
warehouse. We do not deliver on Sundays or bank holidays.
"""

LOYALTY = """# Larkspur Rewards

## Earning points
Members earn one point for every pound spent. Points are not earned on gift cards or delivery fees.

## Spending points
Every 100 points can be exchanged for a £5 voucher at checkout.

## Expiry
Points expire {expiry} months after they are earned.
"""

CURRENT: list[tuple[str, str, object]] = [
    ("returns.md", "text", RETURNS.format(days=30, label="£4.95")),
    ("shipping.md", "text", SHIPPING.format(express="£8.50", cutoff="2 pm")),
    ("loyalty.md", "text", LOYALTY.format(expiry=24)),
    ("damaged-deliveries.pdf", "pdf", [
        "Damaged or missing parcels. Report a parcel that arrives broken within 48 hours of delivery "
        "and attach two photos of the box and the item.",
        "We send a replacement by express delivery at no cost once the photos are checked. A parcel "
        "marked as delivered but not received is traced with the courier for up to 7 days before we "
        "refund it.",
    ]),
    ("warranty.docx", "docx", [
        ("Warranty", [
            "Kettles, toasters and coffee machines carry a two-year warranty against manufacturing faults.",
            "Accessories such as jugs and filters are covered for one year.",
        ]),
        ("Claims", [
            "A warranty claim needs the serial number printed on the sticker under the base, and proof "
            "of purchase.",
        ]),
        ("What is not covered", [
            "Limescale damage, dropped appliances and commercial use void the warranty.",
        ]),
    ]),
    ("repairs.md", "text", """# Repairs

## Out-of-warranty repairs
Out-of-warranty repairs cost a flat fee of £25 plus parts. Repairs take about 10 working days from
the day the appliance reaches the workshop.

## Sending an appliance in
We post you a prepaid courier bag; pack the appliance without its jug or filters.
"""),
    ("products.csv", "text", """sku,product,price_gbp,warranty_years
LK-K100,Aster 1.7 litre kettle,39,2
LK-K150,Aster temperature-control kettle,59,2
LK-T200,Bramble 2-slice toaster,45,2
LK-T400,Bramble 4-slice toaster,65,2
LK-C300,Corvid bean-to-cup coffee machine,149,2
LK-M050,Wren milk frother,29,1
"""),
    ("spare-parts.csv", "text", """part,fits,price_gbp
limescale filter,Aster kettles,4
lid hinge,Aster kettles,7
crumb tray,Bramble toasters,6
water tank,Corvid coffee machine,18
whisk,Wren milk frother,5
"""),
    ("support-hours.html", "text", """<html><head><title>Contact us</title></head><body>
<h1>Contact us</h1>
<h2>Phone</h2>
<p>Our phone line is open 8 am to 8 pm Monday to Friday and 9 am to 5 pm on Saturday.</p>
<h2>Live chat</h2>
<p>Live chat on the website answers around the clock.</p>
<h2>Email</h2>
<p>Email replies arrive within one business day.</p>
</body></html>
"""),
    ("payments.md", "text", """# Payments

## Accepted methods
We take Visa, Mastercard, American Express and PayPal. We do not accept cash on delivery or cheques.

## Instalments
Orders over £99 can be split into three interest-free monthly payments with Klarna.

## When you are charged
The card is charged when the order ships, not when it is placed.
"""),
    ("order-changes.md", "text", """# Changing an order

## Cancelling
An order can be cancelled free of charge within 2 hours of being placed.

## Changing the address
The delivery address can be changed until the parcel is dispatched; after that, contact Parcelwing
with the tracking number.
"""),
    ("price-match.html", "text", """<html><body>
<h1>Price match promise</h1>
<p>We match the price of any UK retailer for an identical product within 14 days of purchase.</p>
<p>Marketplace sellers, clearance sales and voucher codes are excluded.</p>
</body></html>
"""),
    ("gift-cards.md", "text", """# Gift cards

Gift cards are valid for three years from the date of purchase.

Gift cards cannot be exchanged for cash or refunded.

A lost gift card can be replaced once, if you still have the order email.
"""),
    ("recycling.md", "text", """# Recycling old appliances

## Take-back on delivery
When we deliver a new appliance, the driver can take your old one away for free, provided it is the
same kind (a kettle for a kettle). Book the collection at checkout.

## What we cannot take
Batteries and light bulbs are not collected.
"""),
    ("privacy.md", "text", """# Privacy

## Records
Order records are kept for six years for tax purposes. We never sell customer data.

## Deleting an account
An account is deleted within 30 days of a deletion request.
"""),
    ("business-accounts.docx", "docx", [
        ("Trade accounts", [
            "Cafés and offices can open a trade account with 30-day invoice terms.",
            "Trade accounts get 10% off list prices.",
        ]),
        ("Keeping the account", [
            "A trade account needs a minimum spend of £500 per quarter.",
        ]),
    ]),
    ("international.md", "text", """# Delivery outside the UK

## Where we ship
We ship to Ireland and the countries of the European Union. We do not ship outside Europe.

## Duties
Customs duties and import VAT are paid by the customer on delivery.

## Times and prices
International delivery takes 5 to 9 business days and costs £12.
"""),
    ("complaints.pdf", "pdf", [
        "Complaints. A complaint gets a written answer within 8 working days.",
        "If you are not satisfied, ask for the case to be reviewed by the customer care manager. After "
        "eight weeks you can take the complaint to the Retail Ombudsman.",
    ]),
    ("safety.md", "text", """# Product safety

## If something goes wrong
If an appliance sparks, smokes or smells of burning, unplug it at the wall and stop using it.

## Collection
Report it to our safety line, which is open every day, and we arrange a collection within 24 hours.

## Recalls
Recall notices are listed on the safety page of the website.
"""),
    ("accounts.md", "text", """# Your account

## Passwords
Passwords can be reset from the sign-in page; the reset link works for 30 minutes.

## Locked accounts
After five wrong passwords the account locks for 15 minutes.
"""),
]

PREVIOUS: list[tuple[str, str, object]] = [
    ("returns.md", "text", RETURNS.format(days=14, label="£3.95")),
    ("shipping.md", "text", SHIPPING.format(express="£6.99", cutoff="1 pm")),
    ("loyalty.md", "text", LOYALTY.format(expiry=12)),
]
