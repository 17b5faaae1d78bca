"""The tools that general tool-use data is generated from (data/toolgen.py).

Two disjoint pools: `TRAIN_TOOLS` teach the skill, `UNSEEN_TOOLS` (other domains, other names,
other parameter names) only ever appear in held-out records, so their score says whether calling
a tool generalises to tools the model never trained on.

A tool is its OpenAI schema plus questions that ask for it (a parameter with `default=None` is
optional without a default). In a question, ``{param}`` is where a value is said; ``[...]`` is
an optional part, said or left out at random, that holds one optional parameter (left out: the
call leaves it out too, and its default applies). A boolean's ``{param}`` says nothing: saying
the part means the non-default value. ``{obj.field}`` fills a nested object's field.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

_MISSING = object()


@dataclass
class Param:
    name: str
    type: str  # string | integer | number | boolean | array | object
    description: str
    values: object = None  # pool name, (lo, hi) for numbers, list for enums, fields for objects
    default: object = _MISSING
    enum: bool = False
    say: str = "plain"  # how a number is said: plain | pct | money | unit:<unit>
    fields: list["Param"] = field(default_factory=list)

    @property
    def required(self) -> bool:
        return self.default is _MISSING

    def schema(self) -> dict:
        out: dict = {"type": self.type, "description": self.description}
        if self.enum:
            out["enum"] = list(self.values)
        if self.type == "array":
            out["items"] = {"type": "string"}
        if self.type == "object":
            out["properties"] = {f.name: f.schema() for f in self.fields}
            out["required"] = [f.name for f in self.fields if f.required]
        if self.default is not _MISSING and self.default is not None:  # None: optional, no default
            out["default"] = self.default
        return out


@dataclass
class Tool:
    domain: str
    name: str
    description: str
    params: list[Param]
    asks: list[str]

    def schema(self) -> dict:
        return {"type": "function", "function": {
            "name": self.name, "description": self.description,
            "parameters": {"type": "object", "properties": {p.name: p.schema() for p in self.params},
                           "required": [p.name for p in self.params if p.required]}}}


def S(name, description, pool, default=_MISSING):
    return Param(name, "string", description, pool, default)


def I(name, description, lo, hi, default=_MISSING):  # noqa: E743 - reads as the type it makes
    return Param(name, "integer", description, (lo, hi), default)


def N(name, description, lo, hi, say="plain", default=_MISSING):
    return Param(name, "number", description, (lo, hi), default, say=say)


def E(name, description, values, default=_MISSING):
    return Param(name, "string", description, values, default, enum=True)


def B(name, description, default=False):
    return Param(name, "boolean", description, None, default)


def A(name, description, pool, default=_MISSING):
    return Param(name, "array", description, pool, default)


def O(name, description, fields, default=_MISSING):  # noqa: E741
    return Param(name, "object", description, None, default, fields=fields)


POOLS: dict[str, list[str]] = {
    "city": ["Lisbon", "Denver", "Osaka", "Nairobi", "Toronto", "Krakow", "Austin", "Seville", "Perth", "Oslo",
             "Boston", "Hanoi", "Dublin", "Lima", "Cairo", "Zurich", "Portland", "Madrid", "Seoul", "Chicago"],
    "person": ["Maria Lopez", "Tom Becker", "Aisha Khan", "Liam O'Brien", "Chen Wei", "Sofia Rossi",
               "David Kim", "Emma Novak", "Omar Haddad", "Grace Miller", "Yuki Tanaka", "Lucas Silva"],
    "first": ["Anna", "Ben", "Carla", "Dev", "Elif", "Felix", "Gina", "Hugo", "Ines", "Jonas", "Kira", "Leo"],
    "email": ["anna@example.com", "ben.ross@example.org", "carla.m@example.net", "dev@example.com",
              "j.weber@example.org", "kira.s@example.com", "leo77@example.net", "hugo@example.org"],
    "product": ["wireless mouse", "desk lamp", "yoga mat", "coffee grinder", "rain jacket", "phone case",
                "water bottle", "backpack", "bluetooth speaker", "notebook"],
    "cuisine": ["italian", "thai", "mexican", "indian", "japanese", "greek", "vegan", "korean"],
    "language": ["French", "German", "Spanish", "Japanese", "Portuguese", "Italian", "Korean", "Dutch"],
    "artist": ["Miles Davis", "Adele", "Daft Punk", "Nina Simone", "Coldplay", "Bob Marley", "Taylor Swift"],
    "song": ["Blue in Green", "Hello", "One More Time", "Feeling Good", "Yellow", "Redemption Song"],
    "team": ["Lakers", "Arsenal", "Yankees", "Celtics", "Juventus", "Packers", "Maple Leafs"],
    "ticker": ["AAPL", "MSFT", "TSLA", "NVDA", "AMZN", "GOOG", "IBM", "ORCL"],
    "date": ["2027-01-14", "2027-02-03", "2027-03-22", "2027-04-09", "2027-05-30", "2027-06-18",
             "2027-07-04", "2027-08-11", "2027-09-27", "2027-10-15", "2027-11-02", "2027-12-20"],
    "time": ["08:30", "09:00", "10:15", "12:00", "13:45", "15:30", "17:00", "18:30", "19:15", "20:00"],
    "airport": ["LHR", "JFK", "CDG", "SFO", "NRT", "AMS", "MAD", "YYZ", "DXB", "SIN"],
    "topic": ["climate change", "electric cars", "remote work", "space travel", "housing prices",
              "renewable energy", "artificial intelligence", "public transport"],
    "ingredient": ["tomatoes", "basil", "chicken", "rice", "garlic", "spinach", "lentils", "mushrooms", "tofu",
                   "lemon", "onions", "peppers"],
    "movie": ["Inception", "Amelie", "Parasite", "Casablanca", "Up", "Arrival", "Jaws", "Alien"],
    "word": ["serendipity", "ephemeral", "ubiquitous", "resilient", "candid", "meticulous", "obscure"],
    "text": ["good morning", "where is the station", "thank you very much", "see you tomorrow",
             "how much does it cost", "I am lost"],
    "company": ["Acme Corp", "Globex", "Initech", "Umbrella Ltd", "Stark Industries", "Wayne Enterprises"],
    "street": ["12 Oak Street", "48 Harbor Road", "7 Mill Lane", "230 King Avenue", "5 Elm Court"],
    "zip": ["10115", "94107", "SW1A 1AA", "75001", "60601", "02139"],
    "plant": ["basil", "tomato", "fern", "orchid", "cactus", "lavender", "mint"],
    "tag": ["urgent", "work", "family", "travel", "finance", "health", "school", "home"],
    "color": ["red", "blue", "green", "black", "white", "yellow"],
    "size": ["small", "medium", "large"],
    "room": ["kitchen", "living room", "bedroom", "office", "hallway", "garage"],
    "device": ["thermostat", "porch light", "dishwasher", "air purifier", "ceiling fan"],
    "course": ["Linear Algebra", "Organic Chemistry", "World History", "Intro to Python", "Microeconomics"],
    "pet": ["Biscuit", "Luna", "Max", "Pepper", "Milo", "Daisy"],
    "symptom": ["headache", "sore throat", "back pain", "a rash", "a fever", "a cough"],
    "repo": ["web-frontend", "billing-api", "data-pipeline", "mobile-app", "auth-service"],
    "package": ["numpy", "requests", "lodash", "express", "pandas", "react"],
    "planet": ["Mars", "Jupiter", "Venus", "Saturn", "Mercury", "Neptune"],
    "hotel": ["Grand Plaza", "Seaside Inn", "Hotel Aurora", "The Maple Lodge", "Park Residence"],
}

TRAIN_TOOLS: list[Tool] = [
    Tool("weather", "get_weather", "Get the current weather for a city.",
         [S("city", "City name", "city"), E("units", "Temperature units", ["celsius", "fahrenheit"], "celsius")],
         ["What's the weather like in {city}[ in {units}]?", "How warm is it in {city} right now[, in {units}]?",
          "Check the current weather in {city}[ (use {units})]."]),
    Tool("weather", "get_forecast", "Get a multi-day weather forecast for a city.",
         [S("city", "City name", "city"), I("days", "Number of days to forecast", 2, 10, 3)],
         ["Give me the forecast for {city}[ for the next {days} days].",
          "What will the weather be in {city}[ over the next {days} days]?"]),
    Tool("restaurants", "book_table", "Reserve a table at a restaurant.",
         [S("restaurant", "Restaurant name", "company"), I("party_size", "Number of guests", 1, 12),
          S("time", "Time, HH:MM", "time"), B("outdoor", "Seat outside")],
         ["Book a table at {restaurant} for {party_size} people at {time}[ with outdoor seating{outdoor}].",
          "Can you reserve {restaurant} at {time} for {party_size}[, outside if possible{outdoor}]?"]),
    Tool("restaurants", "find_restaurants", "Search restaurants in a city by cuisine.",
         [S("city", "City to search", "city"), S("cuisine", "Kind of food", "cuisine"),
          I("max_results", "How many results", 2, 10, 5)],
         ["Find {cuisine} restaurants in {city}[, show me {max_results}].",
          "Any good {cuisine} places in {city}?[ List {max_results} of them.]"]),
    Tool("shopping", "search_products", "Search the store's catalog.",
         [S("query", "What to search for", "product"), N("max_price", "Highest price in dollars", 10, 500, "money", None),
          E("sort", "Result order", ["relevance", "price_low", "price_high", "rating"], "relevance")],
         ["Search the shop for a {query}[ under {max_price}][, sorted by {sort}].",
          "I'm looking for a {query}[ that costs less than {max_price}]."]),
    Tool("shopping", "add_to_cart", "Add a product to the shopping cart.",
         [S("product", "Product name", "product"), I("quantity", "How many", 1, 9, 1),
          E("color", "Color", ["red", "blue", "green", "black", "white"], "black")],
         ["Add[ {quantity}] {product} to my cart[ in {color}].", "Put a {product} in the cart[, {quantity} of them][, {color} one]."]),
    Tool("email", "send_email", "Send an email.",
         [S("to", "Recipient email address", "email"), S("subject", "Subject line", "topic"),
          B("high_priority", "Mark as high priority")],
         ["Send an email to {to} with the subject {subject}[ and mark it urgent{high_priority}].",
          "Email {to} about {subject}[, high priority{high_priority}]."]),
    Tool("calendar", "create_event", "Add an event to the calendar.",
         [S("title", "Event title", "topic"), S("date", "Date, YYYY-MM-DD", "date"), S("start", "Start time, HH:MM", "time"),
          I("duration_minutes", "Length in minutes", 15, 180, 60)],
         ["Put a meeting about {title} on my calendar for {date} at {start}[, {duration_minutes} minutes long].",
          "Schedule \"{title}\" on {date} at {start}[ for {duration_minutes} minutes]."]),
    Tool("calendar", "list_events", "List calendar events on a day.",
         [S("date", "Date, YYYY-MM-DD", "date"), B("include_declined", "Also show declined events")],
         ["What's on my calendar on {date}[, including declined ones{include_declined}]?",
          "Show my events for {date}[ and include the ones I declined{include_declined}]."]),
    Tool("translation", "translate_text", "Translate text into another language.",
         [S("text", "Text to translate", "text"), S("target_language", "Language to translate into", "language"),
          E("formality", "Register", ["formal", "informal"], "informal")],
         ["Translate \"{text}\" into {target_language}[, {formality}].",
          "How do you say \"{text}\" in {target_language}?[ Keep it {formality}.]"]),
    Tool("music", "play_song", "Play a song.",
         [S("song", "Song title", "song"), S("artist", "Artist", "artist", ""), B("shuffle", "Shuffle afterwards")],
         ["Play {song}[ by {artist}][ and shuffle after{shuffle}].", "Put on {song}[ from {artist}]."]),
    Tool("sports", "get_score", "Get the latest score of a team.",
         [S("team", "Team name", "team"), E("league", "League", ["nba", "nfl", "mlb", "nhl", "soccer"], "soccer")],
         ["What was the last {team} score[ in the {league}]?", "How did the {team} do in their last game?"]),
    Tool("stocks", "get_stock_price", "Get the latest price of a stock.",
         [S("symbol", "Ticker symbol", "ticker"), E("currency", "Currency", ["USD", "EUR", "GBP"], "USD")],
         ["What's {symbol} trading at[ in {currency}]?", "Current price of {symbol} stock[ in {currency}], please."]),
    Tool("stocks", "set_price_alert", "Alert when a stock crosses a price.",
         [S("symbol", "Ticker symbol", "ticker"), N("price", "Price level in dollars", 10, 900, "money"),
          E("direction", "Alert above or below", ["above", "below"], "above")],
         ["Alert me when {symbol} goes[ {direction}] {price}.", "Set a price alert on {symbol} at {price}[ ({direction})]."]),
    Tool("travel", "search_flights", "Search flights between two airports.",
         [S("origin", "Departure airport code", "airport"), S("destination", "Arrival airport code", "airport"),
          S("date", "Date, YYYY-MM-DD", "date"), I("passengers", "Number of passengers", 1, 6, 1),
          E("cabin", "Cabin class", ["economy", "premium", "business"], "economy")],
         ["Find flights from {origin} to {destination} on {date}[ for {passengers} passengers][ in {cabin}].",
          "I need to fly {origin} to {destination} on {date}[, {passengers} of us][, {cabin} class]."]),
    Tool("travel", "book_hotel", "Book a hotel room.",
         [S("hotel", "Hotel name", "hotel"), S("check_in", "Check-in date, YYYY-MM-DD", "date"),
          I("nights", "Number of nights", 1, 14), B("breakfast", "Include breakfast")],
         ["Book the {hotel} from {check_in} for {nights} nights[ with breakfast{breakfast}].",
          "Reserve a room at {hotel}, checking in {check_in}, {nights} nights[, breakfast included{breakfast}]."]),
    Tool("finance", "convert_currency", "Convert an amount between currencies.",
         [N("amount", "Amount to convert", 5, 5000, "money"), E("from_currency", "From", ["USD", "EUR", "GBP", "JPY"]),
          E("to_currency", "To", ["USD", "EUR", "GBP", "JPY"])],
         ["Convert {amount} from {from_currency} to {to_currency}.",
          "How much is {amount} {from_currency} in {to_currency}?"]),
    Tool("finance", "savings_projection", "Project savings growth.",
         [N("monthly_deposit", "Deposit per month", 50, 2000, "money"), N("rate_percent", "Yearly rate in percent", 1, 9, "pct"),
          I("years", "How many years", 1, 30)],
         ["If I save {monthly_deposit} a month at {rate_percent} for {years} years, what will I have?",
          "Project my savings: {monthly_deposit} monthly, {rate_percent} a year, {years} years."]),
    Tool("health", "log_workout", "Log a workout.",
         [E("activity", "Kind of workout", ["running", "cycling", "swimming", "yoga", "walking"]),
          I("minutes", "Duration in minutes", 10, 120), N("distance_km", "Distance in km", 1, 40, "unit:km", None)],
         ["Log {minutes} minutes of {activity}[, {distance_km}].", "I did {activity} for {minutes} minutes[ and covered {distance_km}]."]),
    Tool("health", "find_doctor", "Find a doctor for a symptom near a city.",
         [S("symptom", "What is wrong", "symptom"), S("city", "City", "city"), B("telehealth", "Video visits only")],
         ["I have {symptom}, find me a doctor in {city}[ who does video visits{telehealth}].",
          "Find a doctor in {city} for {symptom}[, telehealth only{telehealth}]."]),
    Tool("notes", "create_note", "Save a note.",
         [S("title", "Note title", "topic"), A("tags", "Tags for the note", "tag", [])],
         ["Make a note called {title}[ tagged {tags}].", "Save a note titled \"{title}\"[ with the tags {tags}]."]),
    Tool("todo", "add_task", "Add a task to the to-do list.",
         [S("task", "What to do", "topic"), S("due_date", "Due date, YYYY-MM-DD", "date", None),
          E("priority", "Priority", ["low", "normal", "high"], "normal")],
         ["Add \"read about {task}\" to my to-do list[ for {due_date}][ with {priority} priority].",
          "Remind me to look into {task}[ by {due_date}][, priority {priority}]."]),
    Tool("recipes", "find_recipes", "Find recipes that use some ingredients.",
         [A("ingredients", "Ingredients to use", "ingredient"), I("max_minutes", "Longest cooking time", 10, 90, 60),
          B("vegetarian", "Vegetarian only")],
         ["What can I cook with {ingredients}[ in under {max_minutes} minutes][, vegetarian{vegetarian}]?",
          "Find me a recipe using {ingredients}[ that takes at most {max_minutes} minutes]."]),
    Tool("movies", "get_movie_showtimes", "Get showtimes of a movie in a city.",
         [S("movie", "Movie title", "movie"), S("city", "City", "city"), S("date", "Date, YYYY-MM-DD", "date", None)],
         ["When is {movie} playing in {city}[ on {date}]?", "Showtimes for {movie} in {city}[ on {date}], please."]),
    Tool("dictionary", "define_word", "Look up the definition of a word.",
         [S("word", "The word", "word"), B("include_examples", "Add example sentences")],
         ["What does {word} mean[? Give me examples too{include_examples}]?", "Define {word}[ with example sentences{include_examples}]."]),
    Tool("smart_home", "set_thermostat", "Set the thermostat temperature.",
         [N("temperature", "Target temperature in degrees", 16, 28, "unit:degrees"), S("room", "Room", "room", "living room")],
         ["Set the thermostat to {temperature}[ in the {room}].", "Make it {temperature}[ in the {room}], please."]),
    Tool("smart_home", "toggle_device", "Turn a device on or off.",
         [S("device", "Device name", "device"), E("state", "on or off", ["on", "off"])],
         ["Turn {state} the {device}.", "Switch the {device} {state}."]),
    Tool("contacts", "add_contact", "Add a contact with an address.",
         [S("name", "Full name", "person"),
          O("address", "Postal address", [S("street", "Street and number", "street"), S("city", "City", "city"),
                                           S("postal_code", "Postal code", "zip", "")])],
         ["Add {name} to my contacts, address {address.street}, {address.city}[, postal code {address.postal_code}].",
          "Save a contact: {name}, living at {address.street} in {address.city}[ ({address.postal_code})]."]),
    Tool("school", "get_grades", "Get a student's grades in a course.",
         [S("student", "Student name", "person"), S("course", "Course name", "course"),
          E("term", "Term", ["fall", "spring", "summer"], "fall")],
         ["What are {student}'s grades in {course}[ for the {term} term]?", "Show {student}'s {course} grades[ ({term})]."]),
    Tool("pets", "book_vet", "Book a vet appointment for a pet.",
         [S("pet_name", "Pet's name", "pet"), S("date", "Date, YYYY-MM-DD", "date"), E("species", "Animal", ["dog", "cat", "rabbit", "bird"])],
         ["Book a vet visit for my {species} {pet_name} on {date}.", "{pet_name}, my {species}, needs the vet on {date}."]),
    Tool("dev", "create_issue", "Open an issue in a code repository.",
         [S("repo", "Repository", "repo"), S("title", "Issue title", "topic"), A("labels", "Labels", "tag", []),
          I("priority", "Priority from 1 (highest) to 4", 1, 4, 3)],
         ["Open an issue in {repo} titled \"{title}\"[ with labels {labels}][ at priority {priority}].",
          "File a {repo} issue: {title}[, priority {priority}]."]),
    Tool("math", "convert_units", "Convert a quantity between units.",
         [N("value", "The quantity", 1, 500), E("from_unit", "Unit converted from", ["km", "miles", "kg", "pounds"]),
          E("to_unit", "Unit converted to", ["km", "miles", "kg", "pounds"])],
         ["Convert {value} {from_unit} to {to_unit}.", "How many {to_unit} is {value} {from_unit}?"]),
    Tool("news", "get_headlines", "Get the latest news headlines on a topic.",
         [S("topic", "Topic", "topic"), I("count", "How many headlines", 3, 10, 5), S("language", "Language", "language", "English")],
         ["Give me the news on {topic}[, {count} headlines][ in {language}].", "What's new about {topic}?[ Top {count}.]"]),
    Tool("ride", "request_ride", "Request a ride to an address.",
         [S("destination", "Where to", "street"), I("seats", "Number of seats", 1, 6, 1), E("ride_type", "Kind of car", ["standard", "xl", "premium"], "standard")],
         ["Get me a ride to {destination}[ for {seats}][, {ride_type}].", "Call a car to {destination}[, {ride_type} please][, {seats} seats]."]),
    Tool("banking", "transfer_money", "Transfer money to a person.",
         [S("recipient", "Who receives it", "person"), N("amount", "Amount in dollars", 5, 3000, "money"),
          S("memo", "Note for the recipient", "topic", "")],
         ["Send {amount} to {recipient}[ with the note \"{memo}\"].", "Transfer {amount} to {recipient}[, memo: {memo}]."]),
]

UNSEEN_TOOLS: list[Tool] = [
    Tool("astronomy", "planet_visibility", "Tell when a planet is visible in the night sky.",
         [S("planet", "Planet name", "planet"), S("location", "City of the observer", "city"),
          B("with_telescope", "Observer has a telescope")],
         ["When can I see {planet} from {location}[ with my telescope{with_telescope}]?",
          "Is {planet} visible tonight in {location}?"]),
    Tool("gardening", "watering_schedule", "Make a watering schedule for a plant.",
         [S("plant", "Plant", "plant"), I("pot_size_cm", "Pot diameter in cm", 8, 60),
          E("climate", "Climate", ["dry", "temperate", "humid"], "temperate")],
         ["How often should I water a {plant} in a {pot_size_cm} cm pot[ in a {climate} climate]?",
          "Watering plan for my {plant}, pot size {pot_size_cm} cm[, {climate} weather]."]),
    Tool("library", "reserve_book", "Reserve a library book.",
         [S("title", "Book title", "movie"), S("branch", "Library branch (city)", "city"), I("copies", "Number of copies", 1, 3, 1)],
         ["Reserve the book {title} at the {branch} branch[, {copies} copies].",
          "Hold {title} for me at the {branch} library[ ({copies} copies)]."]),
    Tool("parking", "find_parking", "Find a parking spot.",
         [S("near", "Address to park near", "street"), I("hours", "How many hours", 1, 12),
          B("ev_charging", "Needs an electric-car charger"), N("max_rate", "Highest hourly rate in dollars", 1, 20, "money", None)],
         ["Find parking near {near} for {hours} hours[ with EV charging{ev_charging}][ under {max_rate} an hour].",
          "I need to park by {near} for {hours} hours[, max {max_rate} per hour]."]),
    Tool("fitness", "plan_meals", "Plan meals for a daily calorie target.",
         [I("calories", "Calories per day", 1200, 3500), I("days", "Number of days", 1, 7, 3),
          A("exclude", "Foods to leave out", "ingredient", [])],
         ["Plan my meals for {calories} calories a day[ for {days} days][ without {exclude}].",
          "Meal plan at {calories} kcal[, {days} days][, no {exclude}]."]),
    Tool("events", "buy_tickets", "Buy concert tickets.",
         [S("performer", "Artist or band", "artist"), S("city", "Concert city", "city"), I("tickets", "How many tickets", 1, 8),
          E("section", "Seating", ["floor", "balcony", "vip"], "floor")],
         ["Buy {tickets} tickets for {performer} in {city}[, {section} seats].",
          "Get me {tickets} seats to see {performer} in {city}[ in the {section}]."]),
    Tool("hr", "request_leave", "Request days off work.",
         [S("start_date", "First day off, YYYY-MM-DD", "date"), I("days", "Number of days", 1, 15),
          E("leave_type", "Kind of leave", ["vacation", "sick", "personal"], "vacation")],
         ["I want to take {days} days off starting {start_date}[, {leave_type} leave].",
          "Request leave from {start_date} for {days} days[ ({leave_type})]."]),
    Tool("shipping", "ship_package", "Create a shipping label for a package.",
         [N("weight_kg", "Package weight in kg", 0.5, 30, "unit:kg"),
          O("destination", "Where it goes", [S("city", "City", "city"), S("postcode", "Postcode", "zip")]),
          B("insured", "Insure the package")],
         ["Ship a {weight_kg} package to {destination.city}, postcode {destination.postcode}[, insured{insured}].",
          "Make a label for a {weight_kg} parcel going to {destination.city} {destination.postcode}[ with insurance{insured}]."]),
    Tool("language", "practice_quiz", "Make a vocabulary quiz.",
         [S("language", "Language to practise", "language"), I("questions", "Number of questions", 5, 30, 10),
          E("level", "Level", ["beginner", "intermediate", "advanced"], "beginner")],
         ["Quiz me on {language} vocabulary[ with {questions} questions][, {level} level].",
          "Give me a {language} quiz[, {questions} questions][ for {level} learners]."]),
    Tool("utilities", "report_outage", "Report a power or water outage.",
         [E("service", "What is out", ["power", "water", "gas", "internet"]), S("address", "Address", "street"),
          B("urgent", "Someone depends on it medically")],
         ["The {service} is out at {address}[, and it's urgent{urgent}].", "Report a {service} outage at {address}."]),
    Tool("real_estate", "search_listings", "Search homes for sale.",
         [S("city", "City", "city"), I("bedrooms", "Minimum bedrooms", 1, 5), N("max_price", "Highest price in dollars", 100000, 900000, "money", None)],
         ["Show homes in {city} with at least {bedrooms} bedrooms[ under {max_price}].",
          "Any {bedrooms}-bedroom houses for sale in {city}[ below {max_price}]?"]),
    Tool("car", "book_service", "Book a car service appointment.",
         [S("date", "Date, YYYY-MM-DD", "date"), I("mileage", "Current mileage", 1000, 150000),
          E("service", "Kind of service", ["oil_change", "tires", "inspection", "brakes"])],
         ["Book my car in for {service} on {date}; it has {mileage} miles on it.",
          "Schedule a {service} appointment on {date}, car at {mileage} miles."]),
]


# ---------------------------------------------------------------- record-keeping tools, made by rule
# Forms of business software (create / update / find / delete a record of some kind), asked for
# the way people fill a form in words: "Create an invoice: customer Acme Corp, amount $250".
# Many more tools than can be written by hand, and close siblings (create_invoice next to
# update_invoice) to choose between. Training only: none of their kinds is an unseen domain.

POOLS.update({
    "department": ["sales", "engineering", "support", "marketing", "finance", "legal"],
    "plan": ["basic", "plus", "pro", "family"],
    "skill": ["python", "sql", "design", "writing", "negotiation", "excel"],
})

ENTITIES: dict[str, list[Param]] = {
    "invoice": [S("customer", "Customer name", "company"), N("amount", "Amount in dollars", 20, 5000, "money"),
                S("due_date", "Due date, YYYY-MM-DD", "date", None)],
    "support_ticket": [S("title", "Short summary", "topic"),
                       E("severity", "How bad", ["low", "medium", "high", "critical"], "medium"),
                       S("assignee", "Who handles it", "person", None)],
    "order": [S("item", "What is ordered", "product"), I("quantity", "How many", 1, 20, 1),
              S("ship_to", "Delivery address", "street")],
    "employee": [S("full_name", "Employee's name", "person"), S("department", "Department", "department"),
                 N("salary", "Yearly salary in dollars", 30000, 150000, "money", None)],
    "playlist": [S("title", "Playlist name", "topic"), A("songs", "Songs in it", "song"),
                 B("public", "Visible to everyone")],
    "reminder": [S("message", "What to remember", "topic"), S("date", "Day, YYYY-MM-DD", "date"),
                 B("repeat_weekly", "Repeat every week")],
    "budget": [S("category", "Spending category", "tag"), N("monthly_limit", "Limit per month in dollars", 50, 3000, "money")],
    "product_review": [S("product", "Product reviewed", "product"), I("stars", "Stars from 1 to 5", 1, 5),
                       S("comment", "Review text", "topic", None)],
    "subscription": [E("plan", "Plan", ["basic", "plus", "pro", "family"]), S("email", "Account email", "email"),
                     B("annual_billing", "Billed yearly")],
    "job_posting": [S("role", "Job title", "skill"), S("city", "Where", "city"), I("openings", "Positions open", 1, 10, 1),
                    B("remote", "Remote allowed")],
    "expense": [N("amount", "Amount in dollars", 5, 900, "money"), S("category", "Category", "tag"),
                S("date", "Day spent, YYYY-MM-DD", "date", None)],
    "warehouse_item": [S("sku", "Stock code", "ticker"), I("stock", "Units in stock", 0, 500),
                       S("location", "Shelf or room", "room", None)],
}


def _label(p: Param) -> str:
    return p.name.replace("_", " ")


def _form(params: list[Param], all_optional: bool = False) -> str:
    """`label {slot}` parts for a form-like question; optional ones in brackets."""
    parts = []
    for p in params:
        # a boolean's slot says nothing: its label alone is the value (see the module docstring)
        said = f"{_label(p)}{{{p.name}}}" if p.type == "boolean" else f"{_label(p)} {{{p.name}}}"
        optional = all_optional or not p.required
        parts.append(f"[, {said}]" if optional else f", {said}")
    return "".join(parts)


def _optional(p: Param) -> Param:
    return replace(p, default=None) if p.required else p


def _entity_tools(kind: str, attrs: list[Param]) -> list[Tool]:
    word = kind.replace("_", " ")
    record_id = I(f"{kind}_id", f"Id of the {word}", 100, 9999)
    optional = [_optional(p) for p in attrs]
    return [
        Tool(f"records_{kind}", f"create_{kind}", f"Create a new {word} record.", attrs,
             [f"Create a new {word}{_form(attrs)}.", f"Add a {word}{_form(attrs)}.",
              f"Please make a {word} record{_form(attrs)}."]),
        Tool(f"records_{kind}", f"update_{kind}", f"Change fields of an existing {word}.", [record_id] + optional[:1],
             [f"Update {word} {{{record_id.name}}}: set {_label(attrs[0])} to {{{attrs[0].name}}}."
              if attrs[0].type != "boolean" else f"Update {word} {{{record_id.name}}}."]),
        Tool(f"records_{kind}", f"delete_{kind}", f"Delete a {word} by id.", [record_id],
             [f"Delete {word} {{{record_id.name}}}.", f"Remove the {word} with id {{{record_id.name}}}."]),
        Tool(f"records_{kind}", f"find_{kind}s", f"Search {word} records.",
             optional[:2] + [I("limit", "Most results", 2, 50, 10)],
             [f"Find {word}s{_form(optional[:2], all_optional=True)}[, at most {{limit}}].",
              f"Search the {word} records{_form(optional[:2], all_optional=True)}."]),
    ]


RECORD_TOOLS: list[Tool] = [t for kind, attrs in ENTITIES.items() for t in _entity_tools(kind, attrs)]
TRAIN_TOOLS = TRAIN_TOOLS + RECORD_TOOLS
