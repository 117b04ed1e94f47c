// The typed client (web/client, served from its checked-in build) for the app's classic
// scripts, which share one scope: module scripts and deferred scripts run in document
// order, so this runs before them.
import { ChatClient, indexedDbOutbox } from "/client/index.js";

window.ChatClient = ChatClient;
window.indexedDbOutbox = indexedDbOutbox;
