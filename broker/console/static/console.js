// The console's only script of its own: what GOV.UK Frontend's page template does inline,
// which the Content-Security-Policy forbids. A module script runs only in a browser with
// ES modules, which is GOV.UK Frontend's own test of support; its components' CSS for
// JavaScript applies under these body classes. Every page works without it.
import { initAll } from "./govuk/govuk-frontend.min.js";

document.body.classList.add("js-enabled", "govuk-frontend-supported");
initAll();
