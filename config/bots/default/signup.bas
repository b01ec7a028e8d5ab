' signup.bas: a guided form. Each HEAR ends the turn and waits for the next message, in
' whichever process it lands, after any restart. An answer that does not fit its type is
' asked again politely; after three tries the answer is empty and the form gives up.
CLEAR SUGGESTIONS
TALK "Let's sign you up. What is your name?"
HEAR name AS NAME
IF name = "" THEN
  Finish("No problem, we can do this another time.")
  RETURN
END IF

TALK "Thanks, " + name + ". What is your email address?"
HEAR email AS EMAIL
IF email = "" THEN
  Finish("Let's leave it there for now.")
  RETURN
END IF

TALK "When were you born? For example 31/12/1990."
HEAR birthday AS DATE
TALK "Which plan would you like?"
HEAR plan AS "Free", "Pro", "Team"
TALK "Shall I send you the newsletter?"
HEAR newsletter AS BOOLEAN

SET user_name = name
SET "email", email
SET plan = plan
user = GET SESSION "user_id"
' The name is the person's: USER MEMORY (erased with them). Only where the channel knows the
' person: writing USER MEMORY in an anonymous session would make a user record for it.
IF user <> "" THEN SET USER MEMORY "name", name
signups = GET BOT MEMORY "signups"
SET BOT MEMORY "signups", signups + 1
SET CONTEXT "customer" AS name + " is on the " + plan + " plan"
LOG SESSION "signup", plan

summary = name + " <" + email + ">"
IF birthday <> "" THEN summary = summary + ", born " + FORMAT(birthday, "dd mmmm yyyy")
IF plan <> "" THEN summary = summary + ", " + plan + " plan"
TALK "All set: " + summary + ", newsletter " + YesNo(newsletter) + "."
Finish("You are sign-up number " + (signups + 1) + ". Type help to see what else I can do.")

FUNCTION YesNo(answer)
  IF answer = TRUE THEN
    RETURN "yes"
  END IF
  RETURN "no"
END FUNCTION

SUB Finish(text)
  TALK text
  ADD SUGGESTION "Help" AS "help"
END SUB
