"""Handbook questions for `ladder rag eval`, each with the document and the sentence that answers
it, and a short answer the sentence contains. Half are *literal* (they reuse the passage's words)
and half *paraphrased* (written as a customer would ask, sharing almost no words with the
passage): the kind retrieval gets wrong when it only matches words.
"""

from __future__ import annotations

# (kind, question, source, passage, answer)
QUESTIONS: list[tuple[str, str, str, str, str]] = [
    # returns.md
    ("literal", "Within how many days of delivery are returns accepted?", "returns.md",
     "Returns are accepted within 30 days of delivery.", "30 days"),
    ("literal", "How long does a refund take to reach the original payment method?", "returns.md",
     "Refunds go back to the original payment method within 5 business days", "5 business days"),
    ("paraphrased", "How long do I have to send a broken kettle back?", "returns.md",
     "Returns are accepted within 30 days of delivery.", "30 days"),
    ("paraphrased", "My toaster stopped working. Who pays to post it to you?", "returns.md",
     "If an appliance is faulty, the return label is free and we cover the postage.", "free"),
    # shipping.md
    ("literal", "How much does express next-day delivery cost?", "shipping.md",
     "Express next-day delivery costs £8.50", "£8.50"),
    ("literal", "Do you deliver on Sundays or bank holidays?", "shipping.md",
     "We do not deliver on Sundays or bank holidays.", "not"),
    ("paraphrased", "I need it tomorrow, what's the charge for that?", "shipping.md",
     "Express next-day delivery costs £8.50", "£8.50"),
    ("paraphrased", "Is postage waived if I spend a lot?", "shipping.md",
     "Orders over £50 ship free.", "£50"),
    # damaged-deliveries.pdf
    ("literal", "How soon must I report a parcel that arrives broken?", "damaged-deliveries.pdf",
     "Report a parcel that arrives broken within 48 hours of delivery", "48 hours"),
    ("paraphrased", "The box came smashed. What evidence do you want from me?", "damaged-deliveries.pdf",
     "attach two photos of the box and the item", "two photos"),
    # warranty.docx
    ("literal", "How long is the warranty on kettles and toasters?", "warranty.docx",
     "Kettles, toasters and coffee machines carry a two-year warranty against manufacturing faults.", "two-year"),
    ("paraphrased", "My carafe cracked after eighteen months. Can I still claim?", "warranty.docx",
     "Accessories such as jugs and filters are covered for one year.", "one year"),
    ("paraphrased", "Where on the appliance is the code I must quote to get a fault fixed for free?", "warranty.docx",
     "A warranty claim needs the serial number printed on the sticker under the base", "serial number"),
    # repairs.md
    ("literal", "What is the flat fee for an out-of-warranty repair?", "repairs.md",
     "Out-of-warranty repairs cost a flat fee of £25 plus parts.", "£25"),
    ("paraphrased", "My two-year cover ran out; what will fixing it set me back?", "repairs.md",
     "Out-of-warranty repairs cost a flat fee of £25 plus parts.", "£25"),
    # products.csv
    ("literal", "What is the price of the Bramble 4-slice toaster?", "products.csv",
     "LK-T400,Bramble 4-slice toaster,65,2", "65"),
    ("paraphrased", "What do you charge for the toaster that takes four pieces of bread?", "products.csv",
     "LK-T400,Bramble 4-slice toaster,65,2", "65"),
    # spare-parts.csv
    ("literal", "How much is a replacement water tank for the Corvid coffee machine?", "spare-parts.csv",
     "water tank,Corvid coffee machine,18", "18"),
    # support-hours.html
    ("literal", "What are the phone line opening hours on Saturday?", "support-hours.html",
     "Our phone line is open 8 am to 8 pm Monday to Friday and 9 am to 5 pm on Saturday.", "9 am to 5 pm"),
    ("literal", "How quickly do email replies arrive?", "support-hours.html",
     "Email replies arrive within one business day.", "one business day"),
    ("paraphrased", "Can I talk to someone at three in the morning?", "support-hours.html",
     "Live chat on the website answers around the clock.", "around the clock"),
    # payments.md
    ("literal", "Can an order be split into interest-free payments with Klarna?", "payments.md",
     "Orders over £99 can be split into three interest-free monthly payments with Klarna.", "three"),
    ("paraphrased", "Can I spread the cost of a pricey espresso maker over a few months?", "payments.md",
     "Orders over £99 can be split into three interest-free monthly payments with Klarna.", "£99"),
    ("paraphrased", "When does the money actually leave my bank?", "payments.md",
     "The card is charged when the order ships, not when it is placed.", "ships"),
    # order-changes.md
    ("literal", "How long after placing an order can I cancel it free of charge?", "order-changes.md",
     "An order can be cancelled free of charge within 2 hours of being placed.", "2 hours"),
    ("paraphrased", "I clicked buy by mistake a minute ago. Can I undo that?", "order-changes.md",
     "An order can be cancelled free of charge within 2 hours of being placed.", "2 hours"),
    # price-match.html
    ("literal", "Do you match the price of another UK retailer?", "price-match.html",
     "We match the price of any UK retailer for an identical product within 14 days of purchase.", "14 days"),
    ("paraphrased", "I saw it cheaper down the road last week; will you refund the difference?", "price-match.html",
     "We match the price of any UK retailer for an identical product within 14 days of purchase.", "14 days"),
    # loyalty.md
    ("literal", "When do loyalty points expire?", "loyalty.md",
     "Points expire 24 months after they are earned.", "24 months"),
    ("paraphrased", "What are my reward credits worth when I cash them in?", "loyalty.md",
     "Every 100 points can be exchanged for a £5 voucher at checkout.", "£5"),
    # gift-cards.md
    ("literal", "How long are gift cards valid?", "gift-cards.md",
     "Gift cards are valid for three years from the date of purchase.", "three years"),
    ("paraphrased", "Can I swap a present voucher for money?", "gift-cards.md",
     "Gift cards cannot be exchanged for cash or refunded.", "cannot"),
    # recycling.md
    ("literal", "Will the driver take my old appliance away when you deliver a new one?", "recycling.md",
     "When we deliver a new appliance, the driver can take your old one away for free", "free"),
    ("paraphrased", "What happens to the ancient toaster I'm replacing?", "recycling.md",
     "When we deliver a new appliance, the driver can take your old one away for free", "free"),
    # privacy.md
    ("literal", "How long are order records kept?", "privacy.md",
     "Order records are kept for six years for tax purposes.", "six years"),
    ("paraphrased", "If I close my profile, how quickly is my information erased?", "privacy.md",
     "An account is deleted within 30 days of a deletion request.", "30 days"),
    # business-accounts.docx
    ("literal", "What discount do trade accounts get off list prices?", "business-accounts.docx",
     "Trade accounts get 10% off list prices.", "10%"),
    ("paraphrased", "I run a café; can you bill us monthly instead of paying upfront?", "business-accounts.docx",
     "Cafés and offices can open a trade account with 30-day invoice terms.", "30-day"),
    # international.md
    ("literal", "Do you ship outside Europe?", "international.md",
     "We do not ship outside Europe.", "not"),
    ("paraphrased", "Who covers the border taxes when I order from Dublin?", "international.md",
     "Customs duties and import VAT are paid by the customer on delivery.", "customer"),
    # complaints.pdf
    ("literal", "How many working days does a written answer to a complaint take?", "complaints.pdf",
     "A complaint gets a written answer within 8 working days.", "8 working days"),
    ("paraphrased", "I'm unhappy with how my grievance was handled. Who else can look at it?", "complaints.pdf",
     "ask for the case to be reviewed by the customer care manager", "customer care manager"),
    # safety.md
    ("literal", "What should I do if an appliance smells of burning?", "safety.md",
     "If an appliance sparks, smokes or smells of burning, unplug it at the wall and stop using it.", "unplug"),
    ("paraphrased", "My kettle gave off a flash and a bang; how fast can you fetch it?", "safety.md",
     "we arrange a collection within 24 hours", "24 hours"),
    # accounts.md
    ("literal", "How long does the password reset link work?", "accounts.md",
     "the reset link works for 30 minutes", "30 minutes"),
    ("paraphrased", "I typed the wrong login too often and I'm shut out. How long until I can retry?", "accounts.md",
     "After five wrong passwords the account locks for 15 minutes.", "15 minutes"),
]
